"""The local Prefect server's front door: credentials on every request, no foreign Host
header, no cross-origin request from another site; against the real server, from a plain
HTTP client (a local user) and from a real browser (a web page)."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from core.local_server import AUTH_FILE, auth_hint, server_auth
from tests.stack import prefect_basic_auth

CHROMIUM = Path("/usr/bin/chromium")
# What a hostile page asks for: every goal run, with its parameters (the goals, the plans).
READ_RUNS = """async (url) => {
    try {
        const response = await fetch(url, {method: "POST", body: JSON.stringify({limit: 5}),
                                           headers: {"content-type": "application/json"}});
        return {status: response.status, body: (await response.text()).slice(0, 200)};
    } catch (error) {
        return {error: String(error)};
    }
}"""


def test_the_secret_is_made_once_per_home_and_readable_by_its_owner_only(tmp_path: Path) -> None:
    first = server_auth(tmp_path)
    user, _, password = first.partition(":")
    assert user == "mission" and len(password) >= 40
    assert server_auth(tmp_path) == first
    assert stat.S_IMODE((tmp_path / AUTH_FILE).stat().st_mode) == 0o600
    assert server_auth(tmp_path / "other") != first
    assert list(tmp_path.glob(".prefect-auth.*")) == []  # no file left half-made


def test_mission_up_says_where_the_ui_password_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_API_AUTH_STRING", server_auth(tmp_path))
    assert str(tmp_path / AUTH_FILE) in auth_hint(tmp_path)
    monkeypatch.setenv("PREFECT_API_AUTH_STRING", "someone:else")
    assert "PREFECT_API_AUTH_STRING" in auth_hint(tmp_path)


@pytest.mark.slow
def test_a_local_client_without_the_credentials_gets_nothing(prefect_server: str) -> None:
    runs = f"{prefect_server}/flow_runs/filter"
    with httpx.Client(timeout=10) as client:
        assert client.post(runs, json={"limit": 1}).status_code == 401
        wrong = httpx.BasicAuth("mission", "guess")
        assert client.post(runs, json={"limit": 1}, auth=wrong).status_code == 401
        assert client.get(f"{prefect_server}/health").status_code == 200  # probes need none
        assert client.post(runs, json={"limit": 1}, auth=prefect_basic_auth()).status_code == 200

        # A name of the attacker's that resolves to 127.0.0.1 (DNS rebinding): refused even
        # with the right credentials.
        port = urlsplit(prefect_server).port
        foreign = client.post(
            runs,
            json={"limit": 1},
            auth=prefect_basic_auth(),
            headers={"Host": f"rebind.attacker.example:{port}"},
        )
        assert foreign.status_code == 400
        assert client.get(prefect_server.removesuffix("/api") + "/", headers={
            "Host": f"rebind.attacker.example:{port}"}).status_code == 400  # fmt: skip

        # Another site's page may not call it from a browser: no CORS grant.
        preflight = client.options(
            runs,
            headers={
                "Origin": "http://attacker.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,authorization",
            },
        )
        assert "access-control-allow-origin" not in preflight.headers
        simple = client.post(runs, json={"limit": 1}, headers={"Origin": "http://attacker.example"})
        assert "access-control-allow-origin" not in simple.headers


class _AttackerSite(BaseHTTPRequestHandler):
    """A page on another origin (another port of 127.0.0.1): the hostile web page."""

    def do_GET(self) -> None:
        body = b"<!doctype html><title>cute cats</title><p>cats</p>"
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def attacker_site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AttackerSite)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@pytest.mark.slow
def test_a_web_page_in_a_local_browser_cannot_read_or_drive_the_prefect_api(
    prefect_server: str, attacker_site: str
) -> None:
    from playwright.sync_api import Route, sync_playwright

    if not CHROMIUM.exists():
        pytest.fail("needs Debian's Chromium at /usr/bin/chromium (scripts/setup installs it)")
    port = urlsplit(prefect_server).port
    runs = f"{prefect_server}/flow_runs/filter"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                # rebind.test answers 127.0.0.1, as an attacker's DNS does once the page is
                # open.
                "--host-resolver-rules=MAP rebind.test 127.0.0.1",
                # Chromium's own guard against public pages calling loopback (Private Network
                # Access) is off: Firefox and Safari have none, and the server must hold alone.
                "--disable-features=PrivateNetworkAccessSendPreflights,"
                "PrivateNetworkAccessRespectPreflightResults,LocalNetworkAccessChecks,"
                "BlockInsecurePrivateNetworkRequests",
            ],
        )
        try:
            page = browser.new_page()
            # A page of another origin calls the API cross-origin: the browser refuses it.
            page.goto(attacker_site)
            cross_origin = page.evaluate(READ_RUNS, runs)
            assert "error" in cross_origin, cross_origin

            # DNS rebinding: the page was served from rebind.test:<port> (its first DNS
            # answer, played here by the route), then the name resolves to 127.0.0.1 and the
            # page's same-origin requests reach the Prefect server.
            attack = f"http://rebind.test:{port}/cats.html"

            def first_answer(route: Route) -> None:
                route.fulfill(status=200, content_type="text/html", body="<p>cats</p>")

            page.route(attack, first_answer)
            page.goto(attack)
            rebound = page.evaluate(READ_RUNS, f"http://rebind.test:{port}/api/flow_runs/filter")
            assert rebound.get("status") == 400, rebound
            assert "flow" not in rebound.get("body", "")
        finally:
            browser.close()


@pytest.mark.slow
def test_the_prefect_ui_opens_for_whoever_has_the_secret(prefect_server: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    if not CHROMIUM.exists():
        pytest.fail("needs Debian's Chromium at /usr/bin/chromium (scripts/setup installs it)")
    ui = prefect_server.removesuffix("/api")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page()
            page.goto(f"{ui}/runs")
            secret = page.get_by_placeholder("admin:pass")
            expect(secret).to_be_visible(timeout=30_000)
            secret.fill(os.environ["PREFECT_API_AUTH_STRING"])
            page.get_by_role("button", name="Login").click()
            expect(page.get_by_placeholder("admin:pass")).to_have_count(0, timeout=30_000)
            stored = page.evaluate("localStorage.getItem('prefect-password')")
            assert stored  # the UI now sends it with every request
            answered = page.evaluate(
                """async (url) => (await fetch(url, {method: "POST", body: "{}",
                    headers: {"content-type": "application/json",
                              authorization: "Basic " + localStorage.getItem("prefect-password")}
                })).status""",
                f"{prefect_server}/flow_runs/count",
            )
            assert answered == 200
        finally:
            browser.close()
