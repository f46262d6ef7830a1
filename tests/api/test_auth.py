"""Authentication: bearer tokens, the login form, session cookies, CSRF, throttling, headers."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator

import httpx2
import pytest
from fastapi import FastAPI, Form, Request
from fastapi.responses import StreamingResponse
from pydantic import SecretStr
from starlette.testclient import TestClient

from api.auth import (
    AUTH_REQUIRED,
    SESSION_COOKIE,
    Gate,
    LoginThrottle,
    Session,
    UserDep,
    csrf_token_for,
    hash_password,
    page_user,
    verify_password,
)
from api.routes import session
from api.security import DOCS_CSP, STRICT_CSP, add_security_headers
from core.errors import ConfigurationError
from core.settings import Settings

PASSWORD = "correct horse battery staple"
TOKENS = "first-token-aaaaaaaa,second-token-bbbbbbbb"
SECRET = "s" * 32
START = 1_700_000_000.0


class Clock:
    """A clock the test moves by hand, so expiry needs no sleeping."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def make_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "password": SecretStr(PASSWORD),
        "api_tokens": SecretStr(TOKENS),
        "session_secret": SecretStr(SECRET),
        "session_idle_s": 600,
        "session_max_s": 3600,
        "login_max_failures": 3,
        "login_window_s": 300,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def make_app(gate: Gate) -> FastAPI:
    app = FastAPI()
    app.state.gate = gate
    app.include_router(session.router)
    add_security_headers(app)

    @app.get("/private")
    async def private(user: UserDep) -> dict[str, str]:
        return {"kind": user.kind, "name": user.name}

    @app.post("/private")
    async def change(user: UserDep, note: str = Form("")) -> dict[str, str]:
        return {"kind": user.kind, "note": note}

    @app.get("/stream")
    async def stream(user: UserDep) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"data: one\n\n"
            yield b"data: two\n\n"

        return StreamingResponse(chunks(), media_type="text/event-stream")

    @app.get("/page")
    async def page(request: Request) -> dict[str, str | None]:
        user = await page_user(request)
        return {"user": user.kind if user else None, "csrf": csrf_token_for(request)}

    @app.get("/cached")
    async def cached() -> StreamingResponse:
        return StreamingResponse(iter([b"x"]), headers={"Cache-Control": "max-age=60"})

    return app


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def gate(clock: Clock) -> Gate:
    return Gate.from_settings(make_settings(), clock=clock)


@pytest.fixture
def client(gate: Gate) -> Iterator[TestClient]:
    with TestClient(make_app(gate), follow_redirects=False) as client:
        yield client


def form_token(page: httpx2.Response) -> str:
    match = re.search(r'name="csrf_token" value="([^"]*)"', page.text)
    assert match, page.text
    return match.group(1)


def log_in(
    client: TestClient, password: str = PASSWORD, next_path: str = "/tasks"
) -> httpx2.Response:
    token = form_token(client.get("/login"))
    return client.post(
        "/login", data={"password": password, "csrf_token": token, "next": next_path}
    )


def session_of(client: TestClient, gate: Gate) -> Session:
    found = gate.decode_session(client.cookies[SESSION_COOKIE])
    assert found is not None
    return found


# Bearer tokens


def test_no_credentials_gets_401_with_www_authenticate(client: TestClient) -> None:
    response = client.get("/private")
    assert response.status_code == 401
    assert response.json() == {"detail": AUTH_REQUIRED}
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("token", "label"), [("first-token-aaaaaaaa", "token-1"), ("second-token-bbbbbbbb", "token-2")]
)
def test_configured_bearer_token_is_accepted(client: TestClient, token: str, label: str) -> None:
    response = client.get("/private", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json() == {"kind": "token", "name": label}


@pytest.mark.parametrize("token", ["first-token-aaaaaaab", "first-token", "", "ünïcode"])
def test_wrong_bearer_token_is_refused(client: TestClient, token: str) -> None:
    # Raw bytes: a client may send anything, not only ASCII.
    response = client.get("/private", headers={b"Authorization": f"Bearer {token}".encode()})
    assert response.status_code == 401
    assert response.json() == {"detail": "invalid bearer token"}
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_bearer_token_in_query_string_or_cookie_is_not_accepted(client: TestClient) -> None:
    for name in ("token", "access_token", "api_token"):
        assert client.get(f"/private?{name}=first-token-aaaaaaaa").status_code == 401
    client.cookies.set("token", "first-token-aaaaaaaa")
    assert client.get("/private").status_code == 401


def test_post_with_bearer_token_needs_no_csrf_token(client: TestClient) -> None:
    response = client.post(
        "/private", headers={"Authorization": "Bearer second-token-bbbbbbbb"}, data={"note": "hi"}
    )
    assert response.status_code == 200
    assert response.json() == {"kind": "token", "note": "hi"}


# Login and sessions


def test_login_sets_httponly_samesite_cookie_and_reaches_protected_route(
    client: TestClient,
) -> None:
    response = log_in(client, next_path="/private")
    assert response.status_code == 303
    assert response.headers["location"] == "/private"
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE)
    )
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Path=/" in cookie
    assert "Secure" not in cookie  # plain http in the test; https sets it
    assert client.get("/private").json() == {"kind": "session", "name": "page"}


def test_session_cookie_is_secure_over_https(gate: Gate) -> None:
    with TestClient(make_app(gate), base_url="https://testserver", follow_redirects=False) as c:
        response = log_in(c)
    assert response.status_code == 303
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE)
    )
    assert "Secure" in cookie


@pytest.mark.parametrize(
    "fields",
    [{"password": "wrong"}, {"password": ""}, {}],
    ids=["wrong", "empty", "missing"],
)
def test_wrong_empty_or_missing_password_gets_the_same_401(
    client: TestClient, fields: dict[str, str]
) -> None:
    token = form_token(client.get("/login"))
    response = client.post("/login", data={"csrf_token": token, **fields})
    assert response.status_code == 401
    assert re.search(r'<p role="alert">wrong password</p>', response.text)
    assert SESSION_COOKIE not in client.cookies
    assert client.get("/private").status_code == 401


def test_wrong_empty_and_missing_password_bodies_are_identical(client: TestClient) -> None:
    token = form_token(client.get("/login"))
    bodies = {
        client.post("/login", data={"csrf_token": token, **fields}).text
        for fields in ({"password": "nope"}, {"password": ""}, {})
    }
    assert len(bodies) == 1


def test_each_login_gets_a_new_session_id(client: TestClient, gate: Gate) -> None:
    log_in(client)
    first = session_of(client, gate)
    log_in(client)
    second = session_of(client, gate)
    assert first.sid != second.sid
    assert first.csrf != second.csrf


def test_idle_session_is_refused(client: TestClient, clock: Clock) -> None:
    log_in(client)
    clock.now += 600  # exactly at the idle limit: still valid, and last-seen moves here
    assert client.get("/private").status_code == 200
    clock.now += 601
    response = client.get("/private")
    assert response.status_code == 401
    assert response.json() == {"detail": AUTH_REQUIRED}


def test_active_session_slides_its_idle_limit(client: TestClient, clock: Clock) -> None:
    log_in(client)
    for _ in range(5):  # 5 × 500 s of activity: well past the 600 s idle limit in total
        clock.now += 500
        response = client.get("/stream")  # a streaming route still gets the refreshed cookie
        assert response.status_code == 200
        assert response.text == "data: one\n\ndata: two\n\n"
        assert any(c.startswith(SESSION_COOKIE) for c in response.headers.get_list("set-cookie"))


def test_session_refresh_is_sent_at_most_once_a_minute(client: TestClient, clock: Clock) -> None:
    log_in(client)
    clock.now += 30
    assert "set-cookie" not in client.get("/private").headers
    clock.now += 31
    assert "set-cookie" in client.get("/private").headers


def test_session_ends_at_absolute_limit_even_when_active(client: TestClient, clock: Clock) -> None:
    log_in(client)
    for _ in range(7):  # 3500 s of steady use, inside the 3600 s absolute limit
        clock.now += 500
        assert client.get("/private").status_code == 200
    clock.now += 101
    assert client.get("/private").status_code == 401


def test_constructed_expired_cookies_are_refused(client: TestClient, gate: Gate) -> None:
    now = int(START)
    idle = Session("sid-idle", "csrf", issued_at=now - 700, last_seen=now - 601)
    old = Session("sid-old", "csrf", issued_at=now - 3601, last_seen=now)
    fresh = Session("sid-fresh", "csrf", issued_at=now - 3000, last_seen=now - 10)
    for expired in (idle, old):
        client.cookies.set(SESSION_COOKIE, gate.encode_session(expired))
        assert client.get("/private").status_code == 401
    client.cookies.set(SESSION_COOKIE, gate.encode_session(fresh))
    assert client.get("/private").status_code == 200


def test_tampered_cookie_is_refused(client: TestClient, gate: Gate) -> None:
    log_in(client)
    cookie = client.cookies[SESSION_COOKIE]
    body, mac = cookie.split(".")
    forged_body = gate.encode_session(
        Session("sid", "csrf", issued_at=int(START), last_seen=int(START) + 10**6)
    ).split(".")[0]
    other_key = Gate(password_hash=None, session_key=b"k" * 32, clock=lambda: START)
    tampered = [
        f"{forged_body}.{mac}",  # someone else's payload under this cookie's signature
        f"{body}.{mac[:-2]}AA",
        f"{body}x.{mac}",
        other_key.encode_session(session_of(client, gate)),  # signed with another key
        "garbage",
        "",
    ]
    for value in tampered:
        client.cookies.clear()
        client.cookies.set(SESSION_COOKIE, value)
        assert client.get("/private").status_code == 401, value


# CSRF


def test_post_with_session_but_without_csrf_token_is_refused(client: TestClient) -> None:
    log_in(client)
    response = client.post("/private", data={"note": "hi"})
    assert response.status_code == 403
    assert "CSRF token" in response.json()["detail"]
    wrong = client.post("/private", headers={"X-CSRF-Token": "not-it"}, data={"note": "hi"})
    assert wrong.status_code == 403


def test_post_with_session_and_csrf_token_is_accepted(client: TestClient, gate: Gate) -> None:
    log_in(client)
    token = session_of(client, gate).csrf
    by_header = client.post("/private", headers={"X-CSRF-Token": token}, data={"note": "a"})
    assert by_header.status_code == 200
    assert by_header.json() == {"kind": "session", "note": "a"}
    by_field = client.post("/private", data={"note": "b", "csrf_token": token})
    assert by_field.status_code == 200
    assert by_field.json() == {"kind": "session", "note": "b"}


def test_page_helpers_see_the_session_and_its_csrf_token(client: TestClient, gate: Gate) -> None:
    assert client.get("/page").json() == {"user": None, "csrf": ""}
    log_in(client)
    assert client.get("/page").json() == {"user": "session", "csrf": session_of(client, gate).csrf}


def test_login_with_wrong_csrf_token_is_refused(client: TestClient) -> None:
    client.get("/login")
    response = client.post(
        "/login", data={"password": PASSWORD, "csrf_token": "forged", "next": "/tasks"}
    )
    assert response.status_code == 403
    assert "the login form expired; reload the page and try again" in response.text
    assert SESSION_COOKIE not in client.cookies


def test_login_without_the_form_cookie_is_refused(gate: Gate) -> None:
    with TestClient(make_app(gate), follow_redirects=False) as other:
        token = form_token(other.get("/login"))
    with TestClient(make_app(gate), follow_redirects=False) as victim:
        response = victim.post("/login", data={"password": PASSWORD, "csrf_token": token})
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"password": "x"}', "application/json"),
        (b"\xff\xfe garbage", "application/x-www-form-urlencoded"),
        (b"--x\r\nbroken", "multipart/form-data; boundary=x"),
        (b"", "multipart/form-data"),
    ],
)
def test_malformed_login_form_is_refused_without_500_or_422(
    client: TestClient, body: bytes, content_type: str
) -> None:
    client.get("/login")
    response = client.post("/login", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 403
    assert "the login form expired" in response.text


def test_login_form_with_a_file_part_is_refused_without_500(client: TestClient) -> None:
    token = form_token(client.get("/login"))
    response = client.post(
        "/login",
        data={"csrf_token": token, "password": PASSWORD},
        files={"upload": ("a.txt", b"x" * 10)},
    )
    assert response.status_code == 403


def test_logout_clears_the_cookie(client: TestClient, gate: Gate) -> None:
    log_in(client)
    token = session_of(client, gate).csrf
    response = client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert 'mission_session=""' in response.headers["set-cookie"]
    assert "Max-Age=0" in response.headers["set-cookie"]
    assert client.get("/private").status_code == 401


def test_a_copy_of_the_cookie_is_refused_after_logout(client: TestClient, gate: Gate) -> None:
    log_in(client)
    copy = client.cookies[SESSION_COOKIE]
    token = session_of(client, gate).csrf
    assert client.post("/logout", data={"csrf_token": token}).status_code == 303
    client.cookies.set(SESSION_COOKIE, copy)  # kept by whoever copied it
    assert client.get("/private").status_code == 401
    assert client.post("/private", data={"note": "x", "csrf_token": token}).status_code == 401
    assert client.get("/page").json() == {"user": None, "csrf": ""}
    log_in(client)  # a new login is a new session
    assert client.get("/private").status_code == 200


def test_a_new_password_ends_every_session_even_with_the_same_secret(clock: Clock) -> None:
    before = Gate.from_settings(make_settings(), clock=clock)
    replica = Gate.from_settings(make_settings(), clock=clock)
    changed = Gate.from_settings(make_settings(password=SecretStr("a new password")), clock=clock)
    cookie = before.encode_session(before.new_session())
    assert replica.decode_session(cookie) is not None  # same secret, same password
    assert changed.decode_session(cookie) is None
    encoded = hash_password(PASSWORD)
    by_hash = make_settings(password=None, password_hash=SecretStr(encoded))
    hashed = Gate.from_settings(by_hash, clock=clock)
    cookie = hashed.encode_session(hashed.new_session())
    assert Gate.from_settings(by_hash, clock=clock).decode_session(cookie) is not None
    rehashed = make_settings(password=None, password_hash=SecretStr(hash_password(PASSWORD)))
    assert Gate.from_settings(rehashed, clock=clock).decode_session(cookie) is None


def test_logout_without_csrf_token_is_refused(client: TestClient) -> None:
    log_in(client)
    assert client.post("/logout").status_code == 403
    assert client.get("/private").status_code == 200


# Throttling


def test_too_many_failed_logins_are_throttled_even_with_the_right_password(
    client: TestClient, clock: Clock
) -> None:
    for _ in range(3):
        assert log_in(client, password="wrong").status_code == 401
        clock.now += 10
    response = log_in(client)  # the right password, but too late
    assert response.status_code == 429
    assert response.headers["retry-after"] == "270"  # the first failure leaves the window then
    assert "too many failed logins; try again in 270 s" in response.text
    assert SESSION_COOKIE not in client.cookies
    clock.now += 270
    assert log_in(client).status_code == 303


def test_successful_login_resets_the_failure_count(client: TestClient) -> None:
    for _ in range(2):
        assert log_in(client, password="wrong").status_code == 401
    assert log_in(client).status_code == 303
    for _ in range(2):
        assert log_in(client, password="wrong").status_code == 401
    assert log_in(client).status_code == 303


def test_throttle_memory_is_bounded() -> None:
    clock = Clock()
    limited = LoginThrottle(max_failures=2, window_s=60, clock=clock, max_clients=100)
    for n in range(1000):
        assert limited.attempt(f"10.0.{n // 256}.{n % 256}") is None
    assert len(limited) <= 100


# Start-up checks


def test_gate_refuses_to_start_without_a_password() -> None:
    with pytest.raises(ConfigurationError, match="MISSION_PASSWORD"):
        Gate.from_settings(make_settings(password=None))


def test_gate_without_a_password_starts_in_local_demo(clock: Clock) -> None:
    gate = Gate.from_settings(make_settings(password=None, local_demo=True), clock=clock)
    with TestClient(make_app(gate), follow_redirects=False) as c:
        assert c.get("/private").json() == {"kind": "demo", "name": "local demo"}
        assert c.post("/private", data={"note": "n"}).status_code == 200
        assert c.get("/login?next=/private").headers["location"] == "/private"


def test_local_demo_refuses_cross_site_posts(clock: Clock) -> None:
    gate = Gate.from_settings(make_settings(password=None, local_demo=True), clock=clock)
    with TestClient(make_app(gate), follow_redirects=False) as c:
        forged = c.post("/private", headers={"Origin": "https://evil.example"})
        assert forged.status_code == 403
        assert c.post("/private", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
        same = c.post("/private", headers={"Origin": "http://testserver"})
        assert same.status_code == 200


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "example.com", "::"])
def test_gate_refuses_local_demo_on_a_non_loopback_host(host: str) -> None:
    with pytest.raises(ConfigurationError, match="loopback"):
        Gate.from_settings(make_settings(password=None, local_demo=True, host=host))


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_gate_allows_local_demo_on_loopback(host: str) -> None:
    assert Gate.from_settings(make_settings(password=None, local_demo=True, host=host)).open


def test_password_hash_setting_is_accepted(clock: Clock) -> None:
    encoded = hash_password("from a hash")
    gate = Gate.from_settings(
        make_settings(password=None, password_hash=SecretStr(encoded)), clock=clock
    )
    with TestClient(make_app(gate), follow_redirects=False) as c:
        assert log_in(c, password=PASSWORD).status_code == 401
        assert log_in(c, password="from a hash").status_code == 303
        assert c.get("/private").status_code == 200


def test_invalid_password_hash_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="argon2"):
        Gate.from_settings(make_settings(password=None, password_hash=SecretStr("plain-text")))


def test_password_and_hash_together_are_refused() -> None:
    encoded = SecretStr(hash_password("x"))
    with pytest.raises(ConfigurationError, match="not both"):
        Gate.from_settings(make_settings(password_hash=encoded))


def test_short_session_secret_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="MISSION_SESSION_SECRET"):
        Gate.from_settings(make_settings(session_secret=SecretStr("short")))


def test_without_a_session_secret_sessions_end_at_restart(clock: Clock) -> None:
    before = Gate.from_settings(make_settings(session_secret=None), clock=clock)
    after = Gate.from_settings(make_settings(session_secret=None), clock=clock)
    cookie = before.encode_session(before.new_session())
    assert before.decode_session(cookie) is not None
    assert after.decode_session(cookie) is None


def test_verify_password_returns_false_for_wrong_or_garbled_input() -> None:
    encoded = hash_password("right")
    assert verify_password(encoded, "right")
    assert not verify_password(encoded, "wrong")
    assert not verify_password(encoded, "")
    assert not verify_password("not-a-hash", "right")
    assert not verify_password(encoded[:-5], "right")
    assert encoded.startswith("$argon2id$")


# Security headers


def assert_security_headers(response: httpx2.Response, csp: str = STRICT_CSP) -> None:
    assert response.headers["content-security-policy"] == csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cross-origin-opener-policy"] == "same-origin"


def test_security_headers_on_normal_401_and_404_responses(client: TestClient) -> None:
    ok = client.get("/private", headers={"Authorization": "Bearer first-token-aaaaaaaa"})
    refused = client.get("/private")
    missing = client.get("/no-such-page")
    assert (ok.status_code, refused.status_code, missing.status_code) == (200, 401, 404)
    for response in (ok, refused, missing, client.get("/login")):
        assert_security_headers(response)
        assert response.headers["cache-control"] == "no-store"


def test_route_cache_control_is_kept(client: TestClient) -> None:
    response = client.get("/cached")
    assert response.headers["cache-control"] == "max-age=60"
    assert_security_headers(response)


def test_docs_page_csp_allows_swagger_assets_only_there(client: TestClient) -> None:
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert_security_headers(docs, DOCS_CSP)
    assert "script-src 'self' https://cdn.jsdelivr.net 'unsafe-inline'" in DOCS_CSP
    assert_security_headers(client.get("/docs/oauth2-redirect"), DOCS_CSP)
    assert_security_headers(client.get("/openapi.json"))


def test_the_apis_description_and_its_docs_page_are_behind_the_gate() -> None:
    from api.main import create_app

    app = create_app(make_settings())
    anonymous = TestClient(app, follow_redirects=False)  # not entered: no lifespan, no Prefect
    assert anonymous.get("/openapi.json").status_code == 401
    docs = anonymous.get("/docs")
    assert (docs.status_code, docs.headers["location"]) == (303, "/login?next=%2Fdocs")
    bearer = {"Authorization": "Bearer first-token-aaaaaaaa"}
    described = anonymous.get("/openapi.json", headers=bearer)
    assert described.status_code == 200
    assert "/task/compound" in described.json()["paths"]
    assert "/openapi.json" not in described.json()["paths"]  # not an API route itself
    browser = TestClient(app, follow_redirects=False)
    assert log_in(browser).status_code == 303
    page = browser.get("/docs")
    assert page.status_code == 200 and "'/openapi.json'" in page.text
    assert browser.get("/openapi.json").status_code == 200  # what Swagger UI fetches


def test_login_page_has_no_inline_script_or_style(client: TestClient) -> None:
    page = client.get("/login").text
    assert "<script" not in page
    assert "style=" not in page
    assert "<style" not in page


# Where login leads


@pytest.mark.parametrize(
    "target",
    ["//evil.example", "https://evil.example", "/\\evil.example", "/\t/evil.example", "evil"],
)
def test_next_off_site_falls_back_to_tasks(client: TestClient, target: str) -> None:
    page = client.get("/login", params={"next": target})
    assert 'name="next" value="/tasks"' in page.text
    response = log_in(client, next_path=target)
    assert response.headers["location"] == "/tasks"


def test_next_local_path_is_kept_and_escaped(client: TestClient) -> None:
    page = client.get("/login", params={"next": '/tasks?x="><b>'})
    assert 'value="/tasks?x=&#34;&gt;&lt;b&gt;"' in page.text
    assert log_in(client, next_path="/tasks/abc").headers["location"] == "/tasks/abc"
