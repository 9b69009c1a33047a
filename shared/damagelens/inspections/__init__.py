"""Inspections: the photos of one vehicle sent together, one job per photo, one summary."""

from damagelens.inspections.store import InspectionMeta, InspectionNotFound, InspectionStore
from damagelens.inspections.summary import inspection_public, is_uncertain, read_public, uncertainty_threshold

__all__ = [
    "InspectionMeta",
    "InspectionNotFound",
    "InspectionStore",
    "inspection_public",
    "is_uncertain",
    "read_public",
    "uncertainty_threshold",
]
