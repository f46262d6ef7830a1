"""docs/benchmarks.md is made of sections, each rewritten by its own benchmark command."""

from __future__ import annotations

from pathlib import Path

# In the order they appear; the makespan section (python -m bench) comes first, unmarked.
SERVICE = "<!-- service benchmark: rewritten by python -m bench.service -->"
SCALEOUT = "<!-- scale-out benchmark: rewritten by python -m bench.scaleout -->"
LOAD = "<!-- load benchmark: rewritten by python -m bench.load -->"
START_STOP = "<!-- start and stop benchmark: rewritten by python -m bench.start_stop -->"
CORPUS = "<!-- corpus benchmark: rewritten by python -m bench.corpus -->"
STREAMING = "<!-- streaming benchmark: rewritten by python -m bench.streaming -->"
# Measured by hand from CI runs (it is a test tier, not a benchmark): kept as written.
REAL_MODEL = "<!-- real-model tier: timings of tests/real_model, written by hand -->"
# A before/after comparison made once with two checkouts: kept as written.
REPLANNING = "<!-- replanning: makespan before and after, written by hand -->"
# A profile of the per-hop chain and a before/after made once with two checkouts: as written.
HOPS = "<!-- hops: where a hop goes, profiled by hand -->"
MARKERS = (
    "",
    SERVICE,
    SCALEOUT,
    LOAD,
    START_STOP,
    CORPUS,
    STREAMING,
    REAL_MODEL,
    REPLANNING,
    HOPS,
)


def write_section(out: Path, marker: str, lines: list[str]) -> None:
    """Replace the section that starts at `marker` (or the first, unmarked one) and keep the
    others as they are."""
    text = out.read_text() if out.exists() else ""
    sections: dict[str, str] = {}
    for current in reversed(MARKERS[1:]):
        text, found, body = text.partition(current)
        if found:
            sections[current] = body.strip("\n")
    sections[""] = text.strip("\n")
    sections[marker] = "\n".join(lines).strip("\n")
    parts = [(m + "\n" if m else "") + sections[m] for m in MARKERS if sections.get(m)]
    out.write_text("\n\n".join(parts) + "\n")
