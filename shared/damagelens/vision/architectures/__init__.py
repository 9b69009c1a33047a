"""Named architecture builders (timm-style): `build_architecture(entry)` returns an eval-ready module.

Each builder takes the registry entry and returns a module mapping a normalised batch
`[B, 3, S, S]` to logits `[B, len(labels)]`. The table lives in `registry`; importing this
package imports the builder modules, which register themselves there.
"""

from damagelens.vision.architectures import ensemble, lite, seed, seed_baseline  # noqa: F401  (registration side effects)
from damagelens.vision.architectures.registry import architecture_names, build_architecture, register_architecture

__all__ = ["architecture_names", "build_architecture", "register_architecture"]
