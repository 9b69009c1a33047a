"""One module per stage; importing the package registers the tasks `damagelens.<stage>`."""

from damagelens_worker.stages import classify, detect, explain  # noqa: F401
