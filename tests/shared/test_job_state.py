"""How stage states add up to the job status and progress."""

from __future__ import annotations

import pytest

from damagelens.jobs.state import derive_status, progress
from damagelens.schemas import StageState, Status

Q, R, S, F, C = Status.queued, Status.running, Status.succeeded, Status.failed, Status.canceled


@pytest.mark.parametrize(
    ("stages", "canceled", "expected"),
    [
        ([Q, Q, Q], False, Q),
        ([R, Q, Q], False, R),
        ([S, Q, Q], False, R),
        ([S, S, S], False, S),
        ([S, F, S], False, F),
        ([S, R, Q], True, C),
        ([S, C, C], True, C),
        ([S, S, S], True, C),  # the stages that ran through the cancel do not undo it
        ([S, F, S], True, C),
    ],
)
def test_derive_status(stages: list[Status], canceled: bool, expected: Status) -> None:
    assert derive_status([StageState(status=s) for s in stages], canceled) == expected


def test_progress_counts_running_as_half() -> None:
    assert progress([StageState(status=s) for s in (S, R, Q, Q)]) == pytest.approx(0.375)
    assert progress([StageState(status=s) for s in (S, F)]) == 1.0
