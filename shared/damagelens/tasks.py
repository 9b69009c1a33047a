"""Task names and queues: the only thing gateway and workers share about Celery (dispatch by name)."""

from damagelens.schemas import Stage

TASK_NAMES: dict[Stage, str] = {stage: f"damagelens.{stage.value}" for stage in Stage}
QUEUES: dict[Stage, str] = {stage: stage.value for stage in Stage}
