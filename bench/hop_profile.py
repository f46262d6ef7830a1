"""Where a hop goes: run the per-hop chain (50 subtasks that take 0 ms) through the
compound-goal flow again and again, for a sampling profiler to watch.

    .venv/bin/py-spy record -r 100 -f raw -o hops.txt -- .venv/bin/python -m bench.hop_profile

Prints each run's per-hop figure (as benchmark 1 measures it) so the profile can be read
against it; the profiler itself makes every hop about twice as slow. py-spy comes with the
`bench` extra. What it found: docs/benchmarks.md, "Where a hop goes".
"""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hop_profile", description=__doc__)
    parser.add_argument("--runs", type=int, default=8, help="goal runs of the chain")
    args = parser.parse_args(argv)

    from bench.goal_timer import simulated_server, zero_latency_chain

    with simulated_server("mission-hops-"):
        # Prefect is imported only after the process is connected to the server.
        from bench.__main__ import CHAIN, subtask_spans
        from bench.executors import chain
        from bench.goal_timer import GoalTimer

        with zero_latency_chain(CHAIN):
            timer = GoalTimer(chain(CHAIN))
            order = [s.id for s in timer.plan.topological_order()]
            for run in range(args.runs):
                called_to_end = timer()
                spans = subtask_spans(timer.last_run)
                span = (spans[order[-1]][0] - spans[order[0]][0]).total_seconds()
                print(
                    f"run {run + 1}: {span / (CHAIN - 1) * 1000:.2f} ms per hop, "
                    f"called -> terminal {called_to_end:.2f} s",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
