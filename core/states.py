"""The one state vocabulary: which bucket each Prefect state name of a goal run or subtask
falls in. The progress document carries the bucket beside the state, so the CLI and the page
never keep lists of state names of their own."""

from __future__ import annotations

from typing import Literal, get_args

Bucket = Literal["pending", "running", "completed", "failed", "cancelled", "skipped"]
BUCKET_NAMES: tuple[Bucket, ...] = get_args(Bucket)

# Prefect's state names (and our own Skipped and Halted, which are Completed by type).
BUCKETS: dict[str, Bucket] = {
    "Scheduled": "pending",
    "Pending": "pending",
    "NotReady": "pending",
    "Late": "pending",
    "AwaitingRetry": "pending",
    "AwaitingConcurrencySlot": "pending",
    "Paused": "pending",  # a goal run waiting for its plan to be approved
    "Suspended": "pending",
    "Running": "running",
    "Retrying": "running",
    # Still running until its process has stopped; nothing new starts meanwhile.
    "Cancelling": "running",
    "Completed": "completed",
    "Cached": "completed",
    "Failed": "failed",
    "Crashed": "failed",
    "TimedOut": "failed",
    "Cancelled": "cancelled",
    "Halted": "cancelled",  # never started: the goal run's budget was spent
    "Skipped": "skipped",  # never started: a dependency did not complete
}
# A goal run or subtask in one of these buckets has ended: nothing about it changes again
# (a retry of the goal run starts a new attempt, Scheduled again).
ENDED: frozenset[Bucket] = frozenset({"completed", "failed", "cancelled", "skipped"})

# Prefect state types (StateType values) of goal runs that hold or are about to hold a
# process, and of goal runs that may be run again.
ACTIVE_TYPES = ("PENDING", "RUNNING", "PAUSED", "CANCELLING")
RETRYABLE_TYPES = ("FAILED", "CRASHED", "CANCELLED")


def bucket_of(state: str) -> Bucket:
    """The bucket of a state name; an unknown name counts as pending (not started)."""
    return BUCKETS.get(state, "pending")


def has_ended(state: str) -> bool:
    return bucket_of(state) in ENDED
