"""Per-tier concurrency limits as Prefect global concurrency limits named `tier:<name>`, so the
limits in force are visible and editable in the Prefect UI (tasks/tier_gate.py enforces them)."""

from __future__ import annotations

from prefect.client.orchestration import get_client


def limit_name(tier: str) -> str:
    return f"tier:{tier}"


def ensure_tier_limits(limits: dict[str, int]) -> None:
    """Create or update the Prefect limit of every limited tier (safe to repeat)."""
    if not limits:
        return
    with get_client(sync_client=True) as client:
        for tier, limit in limits.items():
            client.upsert_global_concurrency_limit_by_name(limit_name(tier), limit)
