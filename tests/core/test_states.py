"""The one state vocabulary: every state the document can carry has one bucket."""

from __future__ import annotations

from core.progress import ProgressDocument, SubtaskProgress, count_states
from core.states import BUCKET_NAMES, BUCKETS, bucket_of, has_ended


def test_every_known_state_falls_in_one_of_the_six_buckets() -> None:
    assert set(BUCKETS.values()) == set(BUCKET_NAMES)


def test_cancelling_is_still_running_until_the_process_has_stopped() -> None:
    assert bucket_of("Cancelling") == "running"
    assert not has_ended("Cancelling")
    assert has_ended("Cancelled")


def test_our_own_states_and_unknown_ones() -> None:
    assert (bucket_of("Skipped"), bucket_of("Halted"), bucket_of("Cached")) == (
        "skipped",
        "cancelled",
        "completed",
    )
    assert bucket_of("SomethingNew") == "pending"  # not started, as far as we can tell


def test_the_document_carries_each_bucket_and_counts_by_it() -> None:
    subtasks = [
        SubtaskProgress(id=i, title=i, kind="extract", tier="fast", state=state)
        for i, state in [("a", "Completed"), ("b", "Crashed"), ("c", "Halted"), ("d", "Late")]
    ]
    doc = ProgressDocument(
        id="x", goal="g", state="Paused", created_at=None, updated_at=None,
        prefect_url="", provider="simulated", subtasks=subtasks, counts=count_states(subtasks),
    )  # fmt: skip
    dumped = doc.model_dump(mode="json")
    assert dumped["bucket"] == "pending" and not doc.finished
    assert [s["bucket"] for s in dumped["subtasks"]] == [
        "completed",
        "failed",
        "cancelled",
        "pending",
    ]
    counts = doc.counts
    assert (counts.completed, counts.failed, counts.cancelled, counts.pending) == (1, 1, 1, 1)
    assert doc.model_copy(update={"state": "Crashed"}).finished
