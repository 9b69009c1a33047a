"""Job state in Redis: one hash per job, one field per stage, so stages never overwrite each other."""

from damagelens.jobs.state import JobMeta, JobRecord, derive_status
from damagelens.jobs.store import JobNotFound, JobStore

__all__ = ["JobMeta", "JobNotFound", "JobRecord", "JobStore", "derive_status"]
