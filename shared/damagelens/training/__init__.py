"""Model training, evaluation and export for DamageLens (offline, CPU-friendly).

Submodules import heavy dependencies (torch, timm, ultralytics) lazily where they can, so
`damagelens.training.data` stays cheap to import.
"""
