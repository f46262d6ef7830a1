"""Every use of Prefect's internals, in this package (read from Prefect 3.8.x;
tests/core/test_prefect_compat.py fails loudly when an upgrade moves one).

Here, for goal runs:
- `remember_no_tag_limits`: Prefect's task engine asks the server for a concurrency lease for
  every tagged task run unless its cache says the tags have no limit; tasks/tier_gate.py
  keeps that answer fresh for the tier tags (`_no_limits_cache`, `_cache_lock`), and the
  engine's `prefect.task_engine._concurrency` is wrapped to read it in the task run's own
  thread (see `_answer_no_limit_in_thread`).
- `pause_for_input`: Prefect's `pause_flow_run(wait_for_input=...)`, taken apart so that the
  wait can be woken (a plan approved, a run cancelled) instead of sleeping out its poll:
  `keyset_from_paused_state`, `propose_state_sync`, `RunInput.save`/`load` with a keyset.
- `lean_goal_run`: a `SettingsContext` without flow heartbeats, and
  `prefect.flow_engine.observe_flow_run_suspension` replaced (see its docstring).
- `task_variant`: `Task.with_options` for the options a subtask's task run sets, without
  its cost (see its docstring).
- `share_tls_context`: the `ssl` that `prefect.client.orchestration` and
  `prefect._internal.version_checking` call for each client's TLS context, made to hand out
  one context per CA file (see its docstring).

In `server`, for the Prefect server process only (the server package takes 1.3 s to import,
so nothing else loads it): `AioSqliteConfiguration`, `SQLITE_BEGIN_MODE` and
`use_database_config`, with which core/prefect_sqlite.py swaps the server's SQLite
configuration for one whose write transactions queue; and `refuse_foreign_hosts`, which
wraps the app `prefect server start` serves (`prefect.server.api.server.create_app`, called
with `final=True`) in a Host header check (core/local_server.py, core/prefect_sqlite.py).
"""

from __future__ import annotations

import copy
import ssl
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar, cast
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import State
from prefect.concurrency import services as _concurrency_services
from prefect.exceptions import FlowPauseTimeout
from prefect.input import RunInput, keyset_from_paused_state
from prefect.states import Paused
from prefect.utilities.engine import propose_state_sync

if TYPE_CHECKING:
    from prefect.tasks import Task

PREFECT_SERIES = "3.8."  # the Prefect these internals were read from
Input = TypeVar("Input", bound=RunInput)
Variant = TypeVar("Variant", bound="Task[Any, Any]")


def task_variant(
    task: Variant, *, name: str, task_run_name: str, tags: Iterable[str], retries: int
) -> Variant:
    """`task.with_options(name=..., task_run_name=..., tags=..., retries=...)`, made by
    copying `task` and setting those four attributes.

    `with_options` builds a new Task, and `Task.__init__` reads the function's source
    (`inspect.getsource`, which tokenizes the module) and hashes its code object again:
    about 1 ms of CPU idle and 4 ms on a busy goal run, for each of a plan's subtasks, one
    after another while the first ones already run (cProfile: more than half of
    `compile_plan`). None of these four options feeds anything `__init__` derives (the task
    key, the cache policy, the retry delays: `retry_delay_seconds` is not callable here)."""
    if callable(task.retry_delay_seconds):
        return cast(
            Variant,
            task.with_options(name=name, task_run_name=task_run_name, tags=tags, retries=retries),
        )
    variant = copy.copy(task)
    variant.name = name
    variant.task_run_name = task_run_name
    variant.tags = set(tags)
    variant.retries = retries
    return variant


def remember_no_tag_limits(tag_sets: Iterable[frozenset[str]]) -> None:
    """Tell this process's concurrency service that these tag sets have no limit (for ~5 s),
    and let the task engine see that answer without leaving its thread."""
    with _concurrency_services._cache_lock:
        for key in tag_sets:
            _concurrency_services._no_limits_cache[key] = True
    _answer_no_limit_in_thread()


def _no_limit_known(names: list[str]) -> bool:
    with _concurrency_services._cache_lock:
        return bool(_concurrency_services._no_limits_cache.get(frozenset(names), False))


def _answer_no_limit_in_thread() -> None:
    """Prefect's task engine enters `prefect.concurrency._sync.concurrency` for every tagged
    task run. Even when the cache knows the tags have no limit, the answer is read on
    Prefect's event loop thread and on the slot service's: three hand-offs between threads,
    each waiting for the GIL while the others work, on every subtask's critical path
    (bench.hop_profile). Read it in the task's own thread instead; anything else goes to
    Prefect's context manager as before."""
    import prefect.task_engine as task_engine

    prefect_concurrency = getattr(task_engine, "_concurrency")  # noqa: B009
    if getattr(prefect_concurrency, "answers_no_limit_in_thread", False):
        return

    @contextmanager
    def concurrency(names: list[str], *args: Any, **kwargs: Any) -> Iterator[None]:
        if names and _no_limit_known(names):
            yield
            return
        with prefect_concurrency(names, *args, **kwargs):
            yield

    concurrency.answers_no_limit_in_thread = True  # type: ignore[attr-defined]
    setattr(task_engine, "_concurrency", concurrency)  # noqa: B010


def pause_for_input(
    flow_run_id: UUID,
    input_type: type[Input],
    *,
    key: str,
    timeout_s: float,
    wait: Callable[[float], object],
    check: Callable[[], None],
    poll_s: float = 1.0,
) -> Input:
    """Pause the flow run until it is resumed with `input_type` input, as Prefect's
    `pause_flow_run` does, but waiting with `wait(seconds)` (which may return early: a
    resume or a stop wakes it) and calling `check()` (which raises to give up) each time.
    FlowPauseTimeout after `timeout_s`."""
    paused: State[Any] = Paused(timeout_seconds=int(timeout_s), reschedule=False, pause_key=key)
    keyset = keyset_from_paused_state(paused)
    paused.state_details.run_input_keyset = cast(dict[str, str], keyset)

    def load() -> Input:
        return cast(Input, input_type.load(keyset, flow_run_id=flow_run_id))

    with get_client(sync_client=True) as client:
        state = propose_state_sync(client=client, state=paused, flow_run_id=flow_run_id)
        if state.is_running():  # paused before (a retried run) and resumed since
            return load()
        if not state.is_paused():
            raise RuntimeError(f"the goal run cannot be paused: {state.name}")
        input_type.save(keyset, flow_run_id=flow_run_id)
        deadline = time.monotonic() + timeout_s
        while True:
            check()
            run = client.read_flow_run(flow_run_id)
            if run.state is not None and run.state.is_running():
                return load()
            left = deadline - time.monotonic()
            if left <= 0:
                raise FlowPauseTimeout("the goal run was paused and never resumed")
            wait(min(poll_s, left))


@contextmanager
def lean_goal_run() -> Iterator[None]:
    """Run a goal run in this process without two of Prefect's per-flow-run extras that it
    does not use, each a cost on its start or its end:

    - flow run heartbeats (every 180 s by default): the thread's join at the end waits out
      its 1 s sleep, half a second per goal run on average. A goal run of the warm runner
      or of `mission run` is watched by its process's parent instead; workers (the
      scale-out path) keep them, the crash automation needs them.
    - the suspension observer (`prefect.flow_engine.observe_flow_run_suspension`), an event
      subscription per deployment run that the run waits for as it starts (about 100 ms
      here) and up to 0.2 s for as it ends; goal runs are never suspended (approval pauses
      them in place, with its own wait).
    """
    import prefect.flow_engine
    from prefect.context import SettingsContext

    current = SettingsContext.get()
    assert current is not None
    settings = current.settings
    quiet = settings.model_copy(
        update={"flows": settings.flows.model_copy(update={"heartbeat_frequency": None})}
    )
    setattr(prefect.flow_engine, "observe_flow_run_suspension", _not_observed)  # noqa: B010
    with SettingsContext(profile=current.profile, settings=quiet):
        yield


class _SharedContexts:
    """`ssl` as prefect.client.orchestration uses it, but `create_default_context(cafile=f)`
    builds one context per CA file and hands the same one out again."""

    def __init__(self) -> None:
        self._made: dict[str, ssl.SSLContext] = {}

    def create_default_context(self, *args: Any, **kwargs: Any) -> ssl.SSLContext:
        cafile = kwargs.get("cafile")
        if args or set(kwargs) != {"cafile"} or not isinstance(cafile, str):
            return ssl.create_default_context(*args, **kwargs)
        if cafile not in self._made:
            self._made[cafile] = ssl.create_default_context(cafile=cafile)
        return self._made[cafile]

    def __getattr__(self, name: str) -> Any:
        return getattr(ssl, name)


def share_tls_context() -> None:
    """Let every Prefect client of this process share one TLS context, made now.

    Prefect builds a new `ssl.create_default_context(cafile=certifi)` for each client it
    creates, loading the whole CA bundle each time: about 25 ms of CPU, and a goal run
    creates a dozen clients (its engine, its services, its workers, and a version check for
    each event stream), even for a server on
    http://: profiled, 40% of the CPU a one-subtask goal run spent in its own process. A
    context verifies the same way however many connections share it; one made without a CA
    file (PREFECT_API_TLS_INSECURE_SKIP_VERIFY's, changed after it is made) is still made
    anew each time.

    The context of the CA file Prefect uses now is made at once: called in the warm
    runner's fork server, every goal run it forks has it (made in each child, it was 33 ms
    of a goal run's start, profiled)."""
    import certifi
    import prefect._internal.version_checking as version_checking
    import prefect.client.orchestration as orchestration
    from prefect.settings import PREFECT_API_SSL_CERT_FILE, PREFECT_API_TLS_INSECURE_SKIP_VERIFY

    installed = getattr(orchestration, "ssl")  # noqa: B009
    shared = installed if isinstance(installed, _SharedContexts) else _SharedContexts()
    # The clients, and the server version check every event stream makes as it opens.
    for module in (orchestration, version_checking):
        setattr(module, "ssl", shared)  # noqa: B010
    if not PREFECT_API_TLS_INSECURE_SKIP_VERIFY.value():
        shared.create_default_context(cafile=PREFECT_API_SSL_CERT_FILE.value() or certifi.where())


@contextmanager
def _not_observed(*args: Any, **kwargs: Any) -> Iterator[None]:
    yield
