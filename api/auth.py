"""Who may use the service: the page password, API bearer tokens, session cookies and CSRF."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import math
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING, Annotated, Literal

from argon2 import PasswordHasher, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Depends, HTTPException, Request
from pydantic import BaseModel

from api.logouts import Logouts
from api.security import defer_header
from core.errors import ConfigurationError
from core.settings import Settings

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

SESSION_COOKIE = "mission_session"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
AUTH_REQUIRED = "authentication required: log in at /login or send Authorization: Bearer <token>"
CSRF_REFUSED = (
    "missing or wrong CSRF token: send the session's token in the X-CSRF-Token header "
    "or the csrf_token form field (reload the page if it has been open a long time)"
)
# Refreshing last-seen costs a Set-Cookie; once a minute is plenty for a 30-minute idle limit.
_REFRESH_EVERY_S = 60
_MIN_SECRET_CHARS = 16
_hasher = PasswordHasher()  # argon2id with the library's recommended parameters


def hash_password(plain: str) -> str:
    """The argon2id encoded hash of `plain`, suitable for MISSION_PASSWORD_HASH."""
    return _hasher.hash(plain)


def verify_password(encoded: str, plain: str) -> bool:
    """True when `plain` matches `encoded`; False (never an exception) otherwise."""
    try:
        return _hasher.verify(encoded, plain)
    except (VerificationError, InvalidHashError):
        return False


class Principal(BaseModel):
    """Who made a request. `name` is a label safe to log, never a secret."""

    kind: Literal["token", "session", "demo"]
    name: str


@dataclass(frozen=True)
class Session:
    """What the signed session cookie carries; times are the gate clock's seconds."""

    sid: str
    csrf: str
    issued_at: int
    last_seen: int


class LoginThrottle:
    """Failed logins per client address, kept in the memory of this API process only.

    With several API replicas each counts on its own, so a client gets up to
    replicas × max_failures tries per window. The address is the connection's, or behind a
    proxy listed in MISSION_TRUSTED_PROXIES the client's as that proxy reports it in
    X-Forwarded-For (`mission up` has uvicorn believe that header from those proxies only).
    """

    def __init__(
        self,
        max_failures: int,
        window_s: float,
        clock: Callable[[], float] = time.time,
        max_clients: int = 10_000,
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._clock = clock
        self._max_clients = max_clients
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()  # routes may run in the event loop or in worker threads

    def attempt(self, client: str) -> int | None:
        """Seconds `client` must wait, or None: then the attempt counts as a failure until
        `forget` is called on success, so parallel guesses cannot slip past the limit."""
        with self._lock:
            now = self._clock()
            failures = self._failures.pop(client, None)
            if failures is None:
                failures = deque(maxlen=self.max_failures)
            self._expire(failures, now)
            if len(failures) >= self.max_failures:
                self._failures[client] = failures
                return max(1, math.ceil(failures[0] + self.window_s - now))
            failures.append(now)
            self._failures[client] = failures  # re-inserted last: dict order = least recent first
            if len(self._failures) > self._max_clients:
                self._shrink(now)
            return None

    def __len__(self) -> int:
        """How many client addresses are remembered."""
        return len(self._failures)

    def forget(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)

    def _expire(self, failures: deque[float], now: float) -> None:
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()

    def _shrink(self, now: float) -> None:
        """Bound memory when many addresses fail: drop expired, then least recent, entries."""
        for client in list(self._failures):
            self._expire(self._failures[client], now)
            if not self._failures[client]:
                del self._failures[client]
        while len(self._failures) > self._max_clients:
            del self._failures[next(iter(self._failures))]


class Gate:
    """Checks passwords, bearer tokens and session cookies; one per API process.

    Bearer tokens come from MISSION_API_TOKENS; to revoke one, remove it there and restart
    the API. Sessions are cookies signed with a key made from MISSION_SESSION_SECRET and the
    configured password (MISSION_PASSWORD or MISSION_PASSWORD_HASH), so changing the password
    ends every session; without a secret a random key is made at start, so sessions end at
    every restart and several API replicas must share one MISSION_SESSION_SECRET. Logout
    ends the session on the server too (`logouts`): a copy of its cookie is refused from
    then on, by every replica within api.logouts.CHECK_EVERY_S.
    """

    def __init__(
        self,
        *,
        password_hash: str | None,
        tokens: Sequence[str] = (),
        local_demo: bool = False,
        session_key: bytes | None = None,
        session_idle_s: int = 30 * 60,
        session_max_s: int = 12 * 3600,
        login_max_failures: int = 5,
        login_window_s: int = 300,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._password_hash = password_hash
        self._tokens = [t.encode() for t in tokens]
        self.open = local_demo and password_hash is None
        self._key = session_key or secrets.token_bytes(32)
        self.session_idle_s = session_idle_s
        self.session_max_s = session_max_s
        self.clock = clock
        self.throttle = LoginThrottle(login_max_failures, login_window_s, clock)
        self.logouts = Logouts(clock)

    @classmethod
    def from_settings(cls, settings: Settings, clock: Callable[[], float] = time.time) -> Gate:
        """Refuse to start with no way to log in, or with an open demo reachable from afar."""
        if settings.local_demo and not _is_loopback(settings.host):
            raise ConfigurationError(
                f"MISSION_LOCAL_DEMO=true serves the page without a password, so it must listen "
                f"on a loopback address, not {settings.host!r}: set MISSION_HOST=127.0.0.1 or "
                "turn the demo off and set MISSION_PASSWORD"
            )
        plain = settings.password.get_secret_value() if settings.password else ""
        encoded = settings.password_hash.get_secret_value() if settings.password_hash else ""
        if plain and encoded:
            raise ConfigurationError(
                "set MISSION_PASSWORD or MISSION_PASSWORD_HASH, not both: it is unclear which wins"
            )
        if encoded:
            try:
                extract_parameters(encoded)
            except InvalidHashError:
                raise ConfigurationError(
                    "MISSION_PASSWORD_HASH is not an argon2 encoded hash ($argon2id$v=19$...); "
                    'make one with: python -c "from api.auth import hash_password; '
                    'print(hash_password(input()))"'
                ) from None
        if not plain and not encoded and not settings.local_demo:
            raise ConfigurationError(
                "no page password: set MISSION_PASSWORD (or MISSION_PASSWORD_HASH, an argon2 "
                "hash), or MISSION_LOCAL_DEMO=true to run without one on 127.0.0.1"
            )
        secret = settings.session_secret.get_secret_value() if settings.session_secret else ""
        if secret and len(secret) < _MIN_SECRET_CHARS:
            raise ConfigurationError(
                f"MISSION_SESSION_SECRET must be at least {_MIN_SECRET_CHARS} characters; "
                'make one with: python -c "import secrets; print(secrets.token_urlsafe(32))"'
            )
        return cls(
            # The plain password is hashed at once and not kept.
            password_hash=encoded or (hash_password(plain) if plain else None),
            tokens=settings.tokens,
            local_demo=settings.local_demo,
            session_key=_session_key(secret, plain or encoded) if secret else None,
            session_idle_s=settings.session_idle_s,
            session_max_s=settings.session_max_s,
            login_max_failures=settings.login_max_failures,
            login_window_s=settings.login_window_s,
            clock=clock,
        )

    def check_password(self, plain: str) -> bool:
        """Slow on purpose (argon2); call it from a worker thread in async code."""
        return self._password_hash is not None and verify_password(self._password_hash, plain)

    def check_token(self, token: str) -> Principal | None:
        supplied = token.encode()
        found = None
        for position, expected in enumerate(self._tokens, start=1):
            # Compare with every token so the time taken does not tell which one came close.
            if hmac.compare_digest(supplied, expected) and found is None:
                found = Principal(kind="token", name=f"token-{position}")
        return found

    def new_session(self) -> Session:
        """A fresh session id and CSRF token: called at every login, so ids rotate."""
        now = int(self.clock())
        return Session(secrets.token_urlsafe(18), secrets.token_urlsafe(24), now, now)

    def encode_session(self, session: Session) -> str:
        payload = json.dumps(
            [session.sid, session.csrf, session.issued_at, session.last_seen],
            separators=(",", ":"),
        ).encode()
        body = _b64(payload)
        return f"{body}.{_b64(self._sign(body))}"

    def decode_session(self, cookie: str) -> Session | None:
        """The session in `cookie` when its signature holds and it has not expired."""
        body, _, mac = cookie.partition(".")
        try:
            if not hmac.compare_digest(_unb64(mac), self._sign(body)):
                return None
            sid, csrf, issued_at, last_seen = json.loads(_unb64(body))
            session = Session(str(sid), str(csrf), int(issued_at), int(last_seen))
        except (ValueError, TypeError):
            return None
        now = self.clock()
        if now - session.issued_at > self.session_max_s:
            return None
        if now - session.last_seen > self.session_idle_s:
            return None
        return session

    def session_cookie(self, session: Session | None, secure: bool) -> str:
        """A Set-Cookie value carrying `session`, or clearing the cookie when None."""
        cookie: SimpleCookie = SimpleCookie()
        cookie[SESSION_COOKIE] = self.encode_session(session) if session else ""
        morsel = cookie[SESSION_COOKIE]
        morsel["path"] = "/"
        morsel["httponly"] = True
        # Lax, not Strict: a link into /tasks from elsewhere still arrives logged in.
        morsel["samesite"] = "Lax"
        morsel["secure"] = secure
        remaining = session.issued_at + self.session_max_s - int(self.clock()) if session else 0
        morsel["max-age"] = max(0, remaining)
        return morsel.OutputString()

    def _sign(self, body: str) -> bytes:
        return hmac.new(self._key, b"mission_session|" + body.encode(), hashlib.sha256).digest()


def _session_key(secret: str, password: str) -> bytes:
    """The key signing session cookies: the shared secret bound to the configured password
    (as configured: replicas given the same plain password or hash agree on the key), so a
    new password ends every session."""
    return hmac.new(secret.encode(), b"mission-session-key|" + password.encode(), "sha256").digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def gate_of(request: Request) -> Gate:
    gate = getattr(request.app.state, "gate", None)
    if not isinstance(gate, Gate):
        raise RuntimeError("app.state.gate is not set: main.py must set Gate.from_settings(...)")
    return gate


def is_secure(request: Request) -> bool:
    return request.url.scheme == "https"


def current_session(request: Request, refresh: bool = True) -> Session | None:
    """The request's valid session; slides its idle limit (once a minute) when `refresh`."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    gate = gate_of(request)
    session = gate.decode_session(cookie)
    if session and refresh and gate.clock() - session.last_seen >= _REFRESH_EVERY_S:
        session = replace(session, last_seen=int(gate.clock()))
        defer_header(request, "set-cookie", gate.session_cookie(session, is_secure(request)))
    return session


async def csrf_ok(request: Request, expected: str) -> bool:
    """Whether the request carries `expected` in X-CSRF-Token or the csrf_token form field."""
    supplied = request.headers.get("x-csrf-token")
    content_type = request.headers.get("content-type", "")
    if supplied is None and content_type.startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        value = (await request.form()).get("csrf_token")
        supplied = value if isinstance(value, str) else None
    return supplied is not None and hmac.compare_digest(supplied.encode(), expected.encode())


def _cross_site(request: Request) -> bool:
    """A browser request sent by another site (the open demo has no CSRF token to check)."""
    if request.headers.get("sec-fetch-site", "same-origin") not in {"same-origin", "none"}:
        return True
    origin = request.headers.get("origin")
    return origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}"


def _prefect_of(request: Request) -> PrefectClient | None:
    """The app's Prefect client, unless the server is known to be away (or there is none)."""
    link = getattr(request.app.state, "link", None)
    if link is not None and not link.up:
        return None
    client: PrefectClient | None = getattr(request.app.state, "prefect", None)
    return client


async def live_session(request: Request) -> Session | None:
    """The request's valid session, unless a logout ended it (here or on another replica);
    only a live one has its idle limit slid."""
    session = current_session(request, refresh=False)
    if session is None:
        return None
    if await gate_of(request).logouts.ended(session.sid, _prefect_of(request)):
        return None
    return current_session(request)


async def end_session(request: Request, session: Session) -> None:
    """Log `session` out on the server: its cookie, and every copy of it, stop working."""
    gate = gate_of(request)
    until = session.issued_at + gate.session_max_s
    await gate.logouts.end(session.sid, until, _prefect_of(request))


async def require_user(request: Request) -> Principal:
    """The caller: a bearer token first, then the session cookie (with CSRF on unsafe methods)."""
    gate = gate_of(request)
    if gate.open:
        if request.method in UNSAFE_METHODS and _cross_site(request):
            raise HTTPException(403, "cross-site request refused by the local demo")
        return Principal(kind="demo", name="local demo")
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        principal = gate.check_token(token.strip())
        if principal is None:
            raise HTTPException(
                401,
                "invalid bearer token",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        return principal
    session = await live_session(request)
    if session is None:
        raise HTTPException(401, AUTH_REQUIRED, headers={"WWW-Authenticate": "Bearer"})
    if request.method in UNSAFE_METHODS and not await csrf_ok(request, session.csrf):
        raise HTTPException(403, CSRF_REFUSED)
    return Principal(kind="session", name="page")


UserDep = Annotated[Principal, Depends(require_user)]


async def page_user(request: Request) -> Principal | None:
    """The logged-in page user, or None so a page route can redirect to /login?next=..."""
    if gate_of(request).open:
        return Principal(kind="demo", name="local demo")
    return Principal(kind="session", name="page") if await live_session(request) else None


def csrf_token_for(request: Request) -> str:
    """The current session's CSRF token for templates; empty without a session (or for one
    a logout ended: page routes ask `page_user` first, which learns of it)."""
    session = current_session(request, refresh=False)
    if session is None or gate_of(request).logouts.known_ended(session.sid):
        return ""
    return session.csrf
