"""Who is asking: token or session, role, the rate limit on failures, CSRF on actions.

A request is authenticated by ``Authorization: Bearer <token>`` (scripts, curl) or by the session
cookie that ``POST /api/login`` gives for a token (the page).  The cookie is HttpOnly and
SameSite=Strict; an action authenticated by the cookie must also carry the session's CSRF token in
``X-CSRF-Token`` (a bearer header is never sent by a browser on its own, so it needs none).
A client that sends more than ``web.failures_per_minute`` wrong or missing credentials gets 429
until its oldest failure is a minute old, even with a right token.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass

from maskgate.edge.web.tokens import Tokens

COOKIE = "maskgate_session"
WINDOW_S = 60.0


@dataclass(frozen=True)
class Session:
    role: str
    csrf: str
    expires: float


class RateLimiter:
    """Failed attempts per client address over the last minute."""

    def __init__(self, per_minute: int):
        self.per_minute = per_minute
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        q = self._failures.setdefault(client, deque())
        while q and now - q[0] > WINDOW_S:
            q.popleft()
        return q

    def blocked(self, client: str) -> bool:
        with self._lock:
            return len(self._recent(client, time.monotonic())) >= self.per_minute

    def failed(self, client: str) -> None:
        with self._lock:
            now = time.monotonic()
            self._recent(client, now).append(now)
            if len(self._failures) > 10000:  # a scan from many addresses must not grow this forever
                self._failures = {k: v for k, v in self._failures.items() if v}


class Sessions:
    def __init__(self, minutes: float):
        self.seconds = minutes * 60.0
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, role: str) -> tuple[str, Session]:
        sid = secrets.token_urlsafe(32)
        session = Session(role, secrets.token_urlsafe(24), time.monotonic() + self.seconds)
        with self._lock:
            now = time.monotonic()
            self._sessions = {k: s for k, s in self._sessions.items() if s.expires > now}
            self._sessions[sid] = session
        return sid, session

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        with self._lock:
            session = self._sessions.get(sid)
        if session is None or session.expires <= time.monotonic():
            return None
        return session

    def drop(self, sid: str | None) -> None:
        with self._lock:
            self._sessions.pop(sid or "", None)


@dataclass(frozen=True)
class Caller:
    role: str
    via: str  # "bearer" | "session"
    session: Session | None = None

    def csrf_ok(self, header: str | None) -> bool:
        if self.via == "bearer":
            return True
        return bool(header) and self.session is not None and hmac.compare_digest(header.encode(), self.session.csrf.encode())


class Authenticator:
    def __init__(self, tokens: Tokens, *, failures_per_minute: int, session_minutes: float):
        self.tokens = tokens
        self.limiter = RateLimiter(failures_per_minute)
        self.sessions = Sessions(session_minutes)

    def caller(self, authorization: str | None, cookies: dict[str, str]) -> Caller | None:
        if authorization:
            scheme, _, token = authorization.partition(" ")
            role = self.tokens.role_of(token.strip()) if scheme.lower() == "bearer" else None
            return Caller(role, "bearer") if role else None
        session = self.sessions.get(cookies.get(COOKIE))
        return Caller(session.role, "session", session) if session else None


def parse_cookies(header: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in (header or "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep:
            out[name] = value
    return out
