"""DamageLens shared library: settings, schemas, storage, job state, model registry, vision code, CLI."""

__version__ = "0.1.0"
