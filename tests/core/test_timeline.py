"""The timeline of a goal run (core/timeline.py): bars, waits, lanes, the critical path, SVG."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from xml.etree import ElementTree

from core.progress import ProgressDocument, SubtaskProgress, TierReport
from core.timeline import build_timeline, critical_path, pack_rows, timeline_svg

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def at(seconds: float | None) -> datetime | None:
    return None if seconds is None else T0 + timedelta(seconds=seconds)


def sub(
    id: str,
    start: float | None,
    end: float | None,
    *deps: str,
    tier: str = "fast",
    **extra: Any,
) -> SubtaskProgress:
    state = "Completed" if end is not None else ("Running" if start is not None else "Pending")
    return SubtaskProgress(
        id=id,
        title=f"the {id}",
        kind="extract",
        tier=tier,
        state=extra.pop("state", state),
        depends_on=list(deps),
        started_at=at(start),
        ended_at=at(end),
        **extra,
    )


def doc(*subtasks: SubtaskProgress, limits: dict[str, int | None] | None = None) -> Any:
    return ProgressDocument(
        id="run",
        goal="a <goal> & more",
        state="Running",
        created_at=T0,
        updated_at=T0,
        prefect_url="",
        provider="simulated",
        subtasks=list(subtasks),
        tiers={t: TierReport(limit=n) for t, n in (limits or {}).items()},
    )


def bars(timeline: Any) -> dict[str, Any]:
    return {b.subtask: b for lane in timeline.lanes for b in lane.bars}


def test_the_critical_path_follows_the_dependency_that_ended_last() -> None:
    intervals = {"a": (0.0, 1.0), "b": (0.0, 3.0), "c": (3.0, 4.0), "d": (1.0, 2.0)}
    preds = {"a": [], "b": [], "c": ["a", "b"], "d": ["a"]}
    assert critical_path(intervals, preds) == ["b", "c"]
    assert critical_path({}, {}) == []


def test_rows_are_the_slots_a_tier_used() -> None:
    # a and b overlap; c starts when a ends, so it takes a's row again.
    assert pack_rows([(0, 2), (1, 3), (2, 4)]) == [0, 1, 0]


def test_a_bar_per_started_subtask_in_its_tiers_lane_with_its_wait() -> None:
    timeline = build_timeline(
        doc(
            sub("scope", 0, 1),
            sub("pricing", 1, 5, "scope", tier="deep"),
            sub("features", 2.5, 4, "scope"),  # waited 1.5 s for a slot after scope ended
            sub("summary", 5, None, "pricing", "features", tier="writer"),  # still running
            sub("later", None, None, "summary"),
            limits={"fast": 1},
        ),
        now=at(7) or T0,
    )
    assert [lane.tier for lane in timeline.lanes] == ["fast", "deep", "writer"]
    fast = timeline.lanes[0]
    assert fast.limit == 1 and fast.rows == 1
    got = bars(timeline)
    assert set(got) == {"scope", "pricing", "features", "summary"}  # "later" has not started
    assert got["features"].ready == 1 and got["features"].waited == 1.5
    assert got["summary"].running and got["summary"].end == 7  # grows to now
    assert timeline.critical == ["scope", "pricing", "summary"]
    assert [b.critical for b in fast.bars] == [True, False]
    assert timeline.span == 7


def test_a_replaced_subtask_keeps_its_bar_and_its_replacement_follows_it() -> None:
    timeline = build_timeline(
        doc(
            sub("fetch", 0, 2, state="Failed", replaced_by="fetch_2"),
            sub("fetch_2", 3, 4, revision=1),
            sub("write", 4, 5, "fetch_2"),
        ),
        now=at(5) or T0,
    )
    got = bars(timeline)
    assert got["fetch"].bucket == "failed" and got["fetch"].replaced_by == "fetch_2"
    assert got["fetch_2"].ready == 2  # from its failed predecessor's end
    assert timeline.critical == ["fetch", "fetch_2", "write"]


def test_a_limit_is_drawn_as_empty_slots_and_the_svg_escapes_every_text() -> None:
    timeline = build_timeline(
        doc(sub("a", 0, 1), sub("b<script>", 0, 2), limits={"fast": 3}), now=T0
    )
    assert timeline.lanes[0].rows == 3  # two used, one more allowed
    svg_text = timeline_svg(timeline, title="a <goal> & more")
    svg = ElementTree.fromstring(svg_text)
    assert "<script>" not in svg_text
    drawn = {
        r.get("data-subtask"): r.get("data-critical") for r in svg.iter() if r.get("data-subtask")
    }
    assert drawn == {"a": "false", "b<script>": "true"}
    assert "limit 3" in svg_text and "critical path: b&lt;script&gt;" in svg_text


def test_nothing_started_is_an_empty_timeline() -> None:
    timeline = build_timeline(doc(sub("a", None, None)), now=T0)
    assert timeline.lanes == [] and timeline.critical == []
    assert ElementTree.fromstring(timeline_svg(timeline)).tag.endswith("svg")


def test_a_subtask_that_ended_without_a_recorded_start_is_drawn_from_its_predecessors_end() -> None:
    timeline = build_timeline(
        doc(sub("a", 0, 1), sub("b", 0, 2), sub("c", None, 3, "a", "b", state="Completed")),
        now=T0,
    )
    c = bars(timeline)["c"]
    assert (c.start, c.end, c.estimated, bars(timeline)["a"].estimated) == (2, 3, True, False)
    assert timeline.critical == ["b", "c"]
