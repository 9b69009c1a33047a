"""Model registry: one YAML file of frozen entries, looked up by name or alias.

Torch-free on purpose, so the gateway can list models without importing model code.
"""

from damagelens.registry.entries import ModelEntry, Registry, RegistryError, UnknownModelError, load_registry

__all__ = ["ModelEntry", "Registry", "RegistryError", "UnknownModelError", "load_registry"]
