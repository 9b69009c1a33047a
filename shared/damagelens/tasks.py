"""Task names and queues: the only thing gateway and workers share about Celery (dispatch by name)."""

from damagelens.schemas import Stage

TASK_NAMES: dict[Stage, str] = {stage: f"damagelens.{stage.value}" for stage in Stage}
QUEUES: dict[Stage, str] = {stage: stage.value for stage in Stage}

# Webhook deliveries: not an analysis stage, so its own task and queue (and its own worker).
NOTIFY_TASK = "damagelens.notify"
NOTIFY_QUEUE = "notify"
