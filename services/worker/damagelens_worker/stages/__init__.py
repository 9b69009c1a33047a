"""One module per stage, each registering its task `damagelens.<stage>`; listed in `celery_app.STAGE_MODULES`."""
