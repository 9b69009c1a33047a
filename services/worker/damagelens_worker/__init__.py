"""DamageLens workers: one Celery queue per stage; each process loads only its stage's models."""
