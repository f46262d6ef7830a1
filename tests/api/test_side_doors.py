"""The side doors a hostile probe of the running stack found (issue 20), each closed: against
`mission up` on a Prefect server of this module's own, driven over HTTP and raw sockets the
way the probe drove it. The Prefect server's own door is tests/core/test_local_server.py;
a cron that never fires, tests/api/test_schedules.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import selectors
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.schedules import IntervalSchedule
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.states import Cancelled

from api.auth import SESSION_COOKIE
from core.goal_run import DEPLOYMENT_PATH
from core.local_server import PrefectServer
from flows.compound_goal import compound_goal
from services.goal_runs import WrongState, cancel_goal_run
from tests.api.conftest import STACK_ENV, Stack, plan
from tests.fakes.anthropic_server import FakeAnthropic
from tests.stack import PASSWORD, TOKEN, free_port, start_stack, stop_stack

pytestmark = pytest.mark.slow

# The stack of this module: tight limits, so each is reached quickly.
DOOR_ENV = {
    **STACK_ENV,
    "MISSION_SESSION_SECRET": "side-doors-session-secret-0123456789",
    "MISSION_TRUSTED_PROXIES": "127.0.0.2",  # the "proxy" of the throttle test
    "MISSION_HEADER_TIMEOUT_S": "2",
    "MISSION_MAX_STREAMS_PER_CLIENT": "3",
    "MISSION_MAX_ACTIVE_RUNS": "2",
    "MISSION_RUNNER_LIMIT": "6",  # the runner could run 6 goal runs at once: the cap must hold
    "MISSION_MAX_SCHEDULES": "3",
}
# Logins of the session tests come from their own loopback address: the throttle test locks
# 127.0.0.1 out of logging in for MISSION_LOGIN_WINDOW_S.
BROWSER_ADDRESS = "127.0.0.5"
FAST_MODEL = "claude-haiku-5-5"


@pytest.fixture(scope="module")
def door_prefect(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A Prefect server for this module alone: its runner takes no other test's goal runs."""
    server = PrefectServer(home=tmp_path_factory.mktemp("door-prefect"), port=free_port())
    server.start()
    with temporary_settings({PREFECT_API_URL: server.api_url}):
        yield server
    server.stop()


@pytest.fixture(scope="module")
def door(door_prefect: PrefectServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("door-home")
    running = start_stack(door_prefect.api_url, MISSION_HOME=str(home), **DOOR_ENV)
    yield running
    stop_stack(running)


def _from(address: str, stack: Stack, **options: Any) -> httpx.Client:
    """A client whose connections come from `address` (any 127.x is loopback)."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=stack.url, transport=transport, timeout=30, **options)


def _try_login(client: httpx.Client, password: str, forwarded_for: str | None = None) -> int:
    form = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]*)"', form.text)
    assert token, form.text
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    data = {"password": password, "csrf_token": token.group(1), "next": "/tasks"}
    return client.post("/login", data=data, headers=headers).status_code


def _logged_in(stack: Stack) -> tuple[httpx.Client, str]:
    """A browser-like client with a session on `stack`, and the session's CSRF token."""
    client = _from(BROWSER_ADDRESS, stack, follow_redirects=False)
    assert _try_login(client, PASSWORD) == 303
    page = client.get("/tasks")
    csrf = re.search(r'<meta name="csrf-token" content="([^"]*)">', page.text)
    assert csrf, page.text
    return client, csrf.group(1)


async def _runs_of(goal: str) -> list[FlowRun]:
    async with get_client() as client:
        runs = await client.read_flow_runs(limit=200)
    return [run for run in runs if run.parameters.get("goal") == goal]


# 2. Login throttling keys on the real client


def test_login_throttling_counts_the_real_client_not_a_header_it_sends(door: Stack) -> None:
    # From loopback, not a trusted proxy: a new X-Forwarded-For per try changes nothing.
    with _from("127.0.0.1", door) as local:
        codes = [_try_login(local, "wrong", f"198.51.100.{i}") for i in range(6)]
    assert codes == [401] * 5 + [429], codes

    # Behind the trusted proxy (127.0.0.2), each client is counted apart: one that failed
    # five times is refused, another behind the same proxy still logs in; and prefixing a
    # made-up address to the proxy's header does not make a new client.
    with _from("127.0.0.2", door) as proxy:
        guesses = [_try_login(proxy, "wrong", "203.0.113.7") for _ in range(5)]
        assert guesses == [401] * 5
        assert _try_login(proxy, "wrong", "203.0.113.7") == 429
        assert _try_login(proxy, "wrong", "192.0.2.55, 203.0.113.7") == 429
        assert _try_login(proxy, PASSWORD, "203.0.113.8") == 303


# 3. Schedules: a floor, a cap, and the active-run cap for their runs


def test_recurring_goals_have_a_floor_on_frequency_and_a_cap_on_their_number(door: Stack) -> None:
    with door.client() as api:
        try:
            for body, says in [
                ({"goal": "g", "cron": "* * * * * *"}, "has 6 fields; it needs 5"),
                ({"goal": "g", "cron": "*/10 * * * * *"}, "a seconds field is not accepted"),
                ({"goal": "g", "interval_s": 1}, "between 60 s (the shortest)"),
                ({"goal": "g", "interval_s": 59.5}, "between 60 s (the shortest)"),
            ]:
                refused = api.post("/schedules", json=body)
                assert refused.status_code == 422, refused.text
                assert says in refused.json()["detail"]
            for i in range(3):
                created = api.post("/schedules", json={"goal": f"g{i}", "cron": "0 8 * * *"})
                assert created.status_code == 201, created.text
            full = api.post("/schedules", json={"goal": "one more", "interval_s": 3600})
            assert full.status_code == 409, full.text
            assert full.json()["detail"] == (
                "there are 3 recurring goals, the limit is 3 (MISSION_MAX_SCHEDULES); "
                "delete one first"
            )
            assert len(api.get("/schedules").json()["items"]) == 3
        finally:
            for item in api.get("/schedules").json()["items"]:
                api.delete(f"/schedules/{item['id']}")


def test_scheduled_runs_never_exceed_the_active_run_cap_and_say_when_they_were_skipped(
    door: Stack, fake_anthropic: FakeAnthropic
) -> None:
    goal = f"every second {time.time_ns()}"
    fake_anthropic.on("Subtask id: tick", delay=3)
    # A schedule made around the API (in the Prefect UI, say) that fires every second: the
    # probe's 6-field cron made 101 goal runs in 8 s against a cap of 12.
    anchor = datetime.now(UTC) + timedelta(seconds=3)

    async def schedule() -> Any:
        async with get_client() as client:
            deployment = await client.read_deployment_by_name(DEPLOYMENT_PATH)
            made = await client.create_deployment_schedules(
                deployment.id,
                [(IntervalSchedule(interval=timedelta(seconds=1), anchor_date=anchor), True)],
                parameters={"goal": goal, "plan": plan(("tick", []))},
            )
            from prefect.client.schemas.actions import DeploymentUpdate

            await client.update_deployment(  # the scheduler looks at it within seconds
                deployment.id, DeploymentUpdate(description=deployment.description)
            )
            return deployment.id, made[0].id

    deployment_id, schedule_id = asyncio.run(schedule())
    try:
        deadline = time.monotonic() + 60
        while True:
            runs = asyncio.run(_runs_of(goal))
            states = {r.id: r.state.name for r in runs if r.state and r.state.is_final()}
            if len(states) >= 12 and "Completed" in states.values():
                break
            assert time.monotonic() < deadline, states
            time.sleep(1)
    finally:

        async def unschedule() -> None:
            async with get_client() as client:
                await client.delete_deployment_schedule(deployment_id, schedule_id)
                # Until the last one has stopped: the next test has the cap to itself. Each
                # pass cancels what has not ended (a run the scheduler made as its schedule
                # was deleted is found at a later pass).
                until = time.monotonic() + 90  # cancels queue behind the load on 2 cores
                while left := [
                    r for r in await _runs_of(goal) if r.state and not r.state.is_final()
                ]:
                    assert time.monotonic() < until, {str(r.id): r.state_name for r in left}
                    for run in left:
                        with contextlib.suppress(WrongState):  # it ended meanwhile
                            await cancel_goal_run(client, run.id, "the test is over")
                    await asyncio.sleep(0.5)

        asyncio.run(unschedule())

    finished = [r for r in asyncio.run(_runs_of(goal)) if r.id in states]
    skipped = [r for r in finished if r.state and r.state.name == "Cancelled"]
    completed = [r for r in finished if r.state and r.state.name == "Completed"]
    assert skipped and completed
    assert re.fullmatch(
        r"skipped: [0-9]+ goal runs were already running, the cap is 2 \(MISSION_MAX_ACTIVE_RUNS\)",
        skipped[0].state.message or "",  # type: ignore[union-attr]
    ), skipped[0].state
    # Never more than the cap of goal runs at their model at once, with 6 runner slots.
    assert 1 <= fake_anthropic.peak_in_flight[FAST_MODEL] <= 2, fake_anthropic.peak_in_flight
    print(
        f"\nfigure: {len(finished)} scheduled runs finished: {len(completed)} completed, "
        f"{len(skipped)} skipped; at most {fake_anthropic.peak_in_flight[FAST_MODEL]} at "
        "their model at once (cap 2, runner limit 6)"
    )


# 5. Numbers every layer can carry


def test_numbers_no_layer_can_carry_are_refused_and_the_run_list_keeps_working(
    door: Stack,
) -> None:
    huge = {"goal": "g", "budget": {"max_tokens": 10**26}}
    with door.client() as api:
        for body in [
            json.dumps(huge),
            '{"goal": "g", "budget": {"max_cost_usd": Infinity}}',
            '{"goal": "g", "budget": {"max_seconds": NaN}}',
            '{"goal": "g", "budget": {"max_seconds": 1e300}}',
            '{"goal": "g", "budget": {"max_subtasks": 1e20}}',
        ]:
            refused = api.post(
                "/task/compound", content=body, headers={"content-type": "application/json"}
            )
            assert refused.status_code == 422, (body, refused.text)
            assert refused.json()["detail"].startswith("budget."), refused.text
        nan_plan = plan(("a", []))
        nan_plan["subtasks"][0]["temperature"] = "NaN-placeholder"
        body = json.dumps({"goal": "g", "plan": nan_plan}).replace('"NaN-placeholder"', "NaN")
        refused = api.post(
            "/task/compound", content=body, headers={"content-type": "application/json"}
        )
        assert refused.status_code == 422 and "finite" in refused.text, refused.text
        schedule = api.post("/schedules", json={**huge, "interval_s": 3600})
        assert schedule.status_code == 422 and "max_tokens" in schedule.text, schedule.text

        # The largest integer JavaScript carries exactly is accepted, stored and listed.
        largest = 2**53 - 1
        run_id = door.submit(goal="g", plan=plan(("a", [])), budget={"max_tokens": largest})
        listed = api.get("/task")
        assert listed.status_code == 200, listed.text
        assert run_id in {item["id"] for item in listed.json()["items"]}
        doc = api.get(f"/task/{run_id}/progress").json()
        assert doc["budget"]["max_tokens"] == largest


# 6. Logout ends the session, on every replica


def test_a_logout_ends_the_session_on_every_replica(
    door: Stack, door_prefect: PrefectServer, tmp_path: Path
) -> None:
    replica = start_stack(door_prefect.api_url, MISSION_HOME=str(tmp_path), **DOOR_ENV)
    browser, csrf = _logged_in(door)
    copy = browser.cookies[SESSION_COOKIE]
    stolen = {SESSION_COOKIE: copy}
    try:
        with _from(BROWSER_ADDRESS, replica, cookies=stolen) as elsewhere:
            assert elsewhere.get("/task").status_code == 200  # one secret: any replica
            logout = browser.post("/logout", headers={"X-CSRF-Token": csrf})
            assert logout.status_code == 303
            ended_at = time.monotonic()
            with _from(BROWSER_ADDRESS, door, cookies=stolen) as here:
                assert here.get("/task").status_code == 401  # at once, here
                write = here.post("/schedules", json={"goal": "g", "interval_s": 3600},
                                  headers={"X-CSRF-Token": csrf})  # fmt: skip
                assert write.status_code == 401
            while elsewhere.get("/task").status_code == 200:
                assert time.monotonic() - ended_at < 10, "the other replica never saw it"
                time.sleep(0.05)
            seen_after = time.monotonic() - ended_at
            assert elsewhere.get("/tasks").status_code == 303  # the page sends it to log in
        assert seen_after < 2.5, seen_after  # api.logouts.CHECK_EVERY_S, and a request
        print(f"\nfigure: the other replica refused the logged-out cookie after {seen_after:.2f} s")
    finally:
        browser.close()
        stop_stack(replica)


# 7. Event streams per client


@pytest.fixture
def waiting_run(door: Stack) -> Iterator[str]:
    """A goal run that waits for ever (no runner serves it): something to watch."""
    with get_client(sync_client=True) as client:
        run = client.create_flow_run(compound_goal, parameters={"goal": "watched"})
        yield str(run.id)
        client.set_flow_run_state(run.id, Cancelled(), force=True)


def test_one_client_holds_at_most_its_cap_of_event_streams(door: Stack, waiting_run: str) -> None:
    path = f"/task/{waiting_run}/events"
    with contextlib.ExitStack() as streams, door.client() as api:
        for _ in range(3):
            opened = streams.enter_context(api.stream("GET", path))
            assert opened.status_code == 200
        answers = [_answer(api, path) for _ in range(50)]
        assert {status for status, _, _ in answers} == {429}, answers[0]
        assert answers[0][1] == {
            "detail": "this client has 3 event streams open, the limit is 3 "
            "(MISSION_MAX_STREAMS_PER_CLIENT); close one and try again"
        }
        assert int(answers[0][2]) > 0  # Retry-After
        with (
            door.client(token="second-token-abcdef") as other,  # another client: its own cap
            other.stream("GET", path) as theirs,
        ):
            assert theirs.status_code == 200
        streams.close()  # the client's streams end: its slots come back
        deadline = time.monotonic() + 10
        while not _opens(api, path):
            assert time.monotonic() < deadline, "the closed streams' slots never came back"
            time.sleep(0.1)
    print("\nfigure: 3 streams held, 50 more refused 429; slots back when the streams closed")


def _opens(api: httpx.Client, path: str) -> bool:
    with api.stream("GET", path) as response:
        return response.status_code == 200


def _answer(api: httpx.Client, path: str) -> tuple[int, Any, str]:
    """Status, JSON body (None for a stream, which is closed at once) and Retry-After."""
    with api.stream("GET", path) as response:
        if response.status_code == 200:
            return 200, None, ""
        response.read()
        return response.status_code, response.json(), response.headers.get("retry-after", "")


# 8. Oversized bodies get a 413 every client can read


def test_an_oversized_body_gets_a_413_a_simple_client_reads(door: Stack) -> None:
    body = b'{"goal": "' + b"x" * 10_000_000 + b'"}'
    request = urllib.request.Request(
        f"{door.url}/task/compound",
        data=body,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=60)  # sends the whole body before reading
    assert refused.value.code == 413
    assert json.loads(refused.value.read()) == {
        "detail": "the request body is larger than 524,288 bytes"
    }

    # A body announced larger than the API reads to answer politely: 413 before any of it
    # is sent, and the connection is closed after it.
    port = int(door.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(
            b"POST /task/compound HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + TOKEN.encode() + b"\r\nContent-Length: 100000000\r\n\r\n"
        )
        head = _read_until_closed(raw)
    assert head.startswith(b"HTTP/1.1 413 "), head
    assert b"connection: close" in head.lower()


def _read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


# 9. Slow headers


def test_connections_that_never_finish_their_headers_are_closed(door: Stack) -> None:
    port = int(door.url.rsplit(":", 1)[1])
    selector = selectors.DefaultSelector()
    started = time.monotonic()
    for i in range(200):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # never ends
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, i)
    trickler = socket.create_connection(("127.0.0.1", port))  # a byte every 0.3 s
    trickler.sendall(b"GET /health HTTP/1.1\r\n")
    closed_at: dict[int, float] = {}
    next_byte = time.monotonic()
    while len(closed_at) < 200 and time.monotonic() - started < 30:
        for key, _ in selector.select(timeout=0.1):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if sock.recv(1024) == b"":
                closed_at[key.data] = time.monotonic() - started
                selector.unregister(sock)
                sock.close()
        if time.monotonic() >= next_byte and trickler.fileno() != -1:
            with contextlib.suppress(OSError):
                trickler.sendall(b"X")
            next_byte += 0.3
    for key in list(selector.get_map().values()):
        key.fileobj.close()  # type: ignore[union-attr]
    trickler.settimeout(5)
    trickled = _read_until_closed_or_reset(trickler)
    assert len(closed_at) == 200, f"{200 - len(closed_at)} sockets still open after 30 s"
    latest = max(closed_at.values())
    assert latest < 2 + 3, latest  # MISSION_HEADER_TIMEOUT_S=2, and time to notice
    assert trickled  # the trickle closed too
    # Complete requests are not timed: the API answers, and a stream lasts past 2 s.
    with door.client() as api:
        assert api.get("/health").status_code == 200
    print(f"\nfigure: 200 sockets with unfinished headers, all closed by {latest:.2f} s")


def _read_until_closed_or_reset(sock: socket.socket) -> bool:
    try:
        _read_until_closed(sock)
    except ConnectionResetError:
        pass
    except TimeoutError:
        return False
    return True


# 10. The API's description needs the same auth as the API


def test_docs_and_the_openapi_description_need_a_session_or_a_token(door: Stack) -> None:
    with httpx.Client(base_url=door.url, follow_redirects=False) as anonymous:
        assert anonymous.get("/openapi.json").status_code == 401
        docs = anonymous.get("/docs")
        assert (docs.status_code, docs.headers["location"]) == (303, "/login?next=%2Fdocs")
    with door.client() as api:
        described = api.get("/openapi.json")
        assert described.status_code == 200 and "/task/compound" in described.json()["paths"]
    browser, _ = _logged_in(door)
    try:
        page = browser.get("/docs")
        assert page.status_code == 200 and "/openapi.json" in page.text
        assert browser.get("/openapi.json").status_code == 200  # what Swagger UI fetches
    finally:
        browser.close()
