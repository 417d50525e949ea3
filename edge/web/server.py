"""The HTTP side of the installer's page: routes, authentication, actions (standard library only).

``GET /`` and ``/static/*`` are the page (no data in them); everything under ``/api/`` needs a
viewer or admin login (401 otherwise, 429 once a client has failed too often); ``POST
/api/actions/*`` needs the admin role and, with a session cookie, the CSRF token.  Actions are
queued to the gate's thread like MQTT commands; the relay test is recorded as a ``remote_unlock``
event naming the web page, the admin role and the client's address.
"""

from __future__ import annotations

import json
import logging
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from maskgate.edge.config import Config, state_dir
from maskgate.edge.events import EVENT_KINDS
from maskgate.edge.web.auth import COOKIE, Authenticator, parse_cookies
from maskgate.edge.web.live import LiveView
from maskgate.edge.web.tokens import Tokens, load_or_create, secret_path
from maskgate.errors import ConfigError, WebError

log = logging.getLogger(__name__)

STATIC = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
          "style.css": "text/css; charset=utf-8"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
ACTIONS = ("pulse", "lock", "reload")
RELAY_TEST_SECONDS = 1.0
MAX_BODY = 4096


class WebServer:
    """Serves the page on ``web.bind``:``web.port`` from its own threads; :meth:`attach` the running gate."""

    def __init__(self, cfg: Config, *, config_paths=(), tokens: Tokens | None = None):
        self.cfg = cfg
        self.config_paths = [str(p) for p in config_paths]
        self.live = LiveView(cfg)
        self.gate = None
        self.started = time.monotonic()
        self.tokens_file = secret_path(cfg)
        self.auth = Authenticator(tokens if tokens is not None else load_or_create(self.tokens_file),
                                  failures_per_minute=cfg.web.failures_per_minute,
                                  session_minutes=cfg.web.session_minutes)
        self.models = _model_versions(cfg)
        from maskgate.edge.alerts.telemetry import Telemetry

        self.telemetry = Telemetry()
        try:
            self.httpd = _Server((cfg.web.bind, cfg.web.port), _Handler)
        except OSError as exc:
            raise WebError(f"the installer's page cannot listen on {cfg.web.bind}:{cfg.web.port}: {exc.strerror}") from None
        self.httpd.web = self
        self.tls = bool(cfg.web.tls_cert)
        if self.tls:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            try:
                ctx.load_cert_chain(cfg.web.tls_cert, cfg.web.tls_key)
            except (OSError, ssl.SSLError) as exc:
                self.httpd.server_close()
                raise WebError(f"web.tls_cert / web.tls_key cannot be loaded: {exc}") from None
            self.httpd.tls_context = ctx
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        host = self.cfg.web.bind if self.cfg.web.bind not in ("0.0.0.0", "::") else "127.0.0.1"
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}/"

    def attach(self, gate) -> None:
        """Show ``gate`` (a new one after a reload); the gate hands frames to the live view."""
        gate.live = self.live
        self.cfg = self.live.cfg = gate.cfg
        self.gate = gate

    def start(self) -> None:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="maskgate-web", daemon=True)
        self._thread.start()
        log.info("installer's page on %s (tokens in %s)", self.url, self.tokens_file)

    def stop(self) -> None:
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(5.0)
            self._thread = None
        self.httpd.server_close()
        self.live.close()

    # -- what the routes show ------------------------------------------------------------------------ #

    def status(self) -> dict:
        gate = self.gate
        st = gate.status() if gate is not None else None
        data = self.telemetry.payload(st)
        data["uptime_s"] = round(time.monotonic() - self.started, 1)
        data.update({"device": self.cfg.device.name, "door": self.cfg.device.door_id, "models": self.models,
                     "min_face": self.cfg.detection.min_face, "live_fps": self.cfg.web.live_fps})
        if st is not None:
            data.update({"lock": st.lock, "fault": st.fault, "door_open": st.door_open})
        else:
            data.update({"lock": "locked", "fault": "gate not running", "door_open": None})
        return data

    def events(self, kind: str | None, limit: int, before: int | None) -> list[dict]:
        gate = self.gate
        if gate is None or gate.store is None or gate.store.unopened:  # unopened: a full disk at start
            return []
        snaps = _snapshots_by_frame(self.cfg)
        out = []
        for e in gate.store.recent(limit, kind, before):
            d = e.to_json()
            if e.event == "denied" and e.frame in snaps:
                d["snapshot"] = snaps[e.frame]
            out.append(d)
        return out

    def act(self, action: str, client: str) -> str:
        """Queue ``action`` for the gate (admin checked by the caller); returns what was done."""
        gate = self.gate
        if gate is None:
            raise WebError("the gate is not running")
        source = f"web page, admin, {client}"
        if action == "pulse":
            gate.command("unlock", {"source": f"{source}: relay test", "seconds": RELAY_TEST_SECONDS})
            return f"relay test: the lock opens for {RELAY_TEST_SECONDS:g} s"
        if action == "lock":
            gate.command("lock", {"source": source})
            return "locking now"
        from maskgate.edge import config as config_mod

        new = config_mod.load(self.config_paths)  # ConfigError names the key; nothing changes then
        gate.command("reload", {"source": source, "config": new})
        return f"config valid ({', '.join(self.config_paths) or 'defaults'}): the gate restarts with it, locked meanwhile"


def _model_versions(cfg: Config) -> list[dict]:
    from maskgate.edge.model_files import manifest_entry, model_paths

    out = []
    for path in model_paths(cfg):
        try:
            entry = manifest_entry(path)
        except Exception as exc:  # noqa: BLE001 - shown on the page, the gate itself refuses to start
            out.append({"file": path.name, "error": str(exc)})
            continue
        out.append({"file": path.name, "kind": entry.get("kind", ""), "sha256": str(entry.get("sha256", ""))[:12]})
    return out


def _snapshots_by_frame(cfg: Config) -> dict[int, str]:
    if not cfg.events.snapshots:
        return {}
    folder = snapshot_folder(cfg)
    out = {}
    for p in sorted(folder.glob("denied_*.jpg")):  # names sort by time: the newest of a frame number wins
        try:
            out[int(p.stem.rsplit("_", 1)[1])] = p.name
        except (IndexError, ValueError):
            continue
    return out


def snapshot_folder(cfg: Config) -> Path:
    return Path(cfg.events.snapshot_dir) if cfg.events.snapshot_dir else state_dir() / "snapshots"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    tls_context: ssl.SSLContext | None = None
    web: WebServer

    def handle_error(self, request, client_address) -> None:
        """A browser that closes the connection mid-answer (a tab closed, a live picture replaced) is normal."""
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError, ssl.SSLError, TimeoutError)):
            return
        super().handle_error(request, client_address)

    def get_request(self):
        sock, addr = super().get_request()
        if self.tls_context is not None:  # the handshake happens on the request's thread, not here
            sock = self.tls_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "maskgate"
    sys_version = ""
    timeout = 30

    def log_message(self, format, *args):  # noqa: A002 - http.server's name
        log.debug("%s %s", self.client_address[0], format % args)

    # -- plumbing ----------------------------------------------------------------------------------- #

    @property
    def web(self) -> WebServer:
        return self.server.web

    @property
    def client(self) -> str:
        return self.client_address[0]

    def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in {**SECURITY_HEADERS, **(headers or {})}.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data, headers: dict | None = None) -> None:
        self._send(status, json.dumps(data).encode(), "application/json", headers)

    def _error(self, status: int, message: str, headers: dict | None = None) -> None:
        self._json(status, {"error": message}, headers)

    def _caller(self):
        """The authenticated caller, or None after answering 401 / 429."""
        auth = self.web.auth
        if auth.limiter.blocked(self.client):
            self._error(429, "too many failed logins from this address: wait a minute", {"Retry-After": "60"})
            return None
        caller = auth.caller(self.headers.get("Authorization"), parse_cookies(self.headers.get("Cookie")))
        if caller is None:
            auth.limiter.failed(self.client)
            log.warning("installer's page: refused %s %s from %s (no valid token)", self.command, self.path, self.client)
            self._error(401, "log in with the device's token", {"WWW-Authenticate": 'Bearer realm="maskgate"'})
        return caller

    def _body(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ValueError("request body too large")
        raw = self.rfile.read(length) if length else b"{}"
        data = json.loads(raw or b"{}")
        if not isinstance(data, dict):
            raise ValueError("the body must be a JSON object")
        return data

    def _same_origin(self) -> bool:
        """A browser's Origin, when sent, must be this page (another site's form or script is refused)."""
        origin = self.headers.get("Origin")
        if origin is None:
            return True
        return urlsplit(origin).netloc == (self.headers.get("Host") or "")

    # -- routes -------------------------------------------------------------------------------------- #

    def do_GET(self):  # noqa: N802 - http.server's name
        url = urlsplit(self.path)
        path = url.path
        if path in ("/", "/index.html"):
            return self._static("index.html")
        if path.startswith("/static/"):
            return self._static(path[len("/static/"):])
        if not path.startswith("/api/"):
            return self._error(404, "no such page")
        caller = self._caller()
        if caller is None:
            return
        query = parse_qs(url.query)
        if path == "/api/whoami":
            return self._json(200, {"role": caller.role, "csrf": caller.session.csrf if caller.session else None})
        if path == "/api/status":
            return self._json(200, self.web.status())
        if path == "/api/events":
            return self._events(query)
        if path == "/api/live.jpg":
            return self._live(query)
        if path == "/api/snapshot":
            return self._snapshot(query)
        return self._error(404, "no such API")

    do_HEAD = do_GET

    def do_POST(self):  # noqa: N802
        path = urlsplit(self.path).path
        if not self._same_origin():
            return self._error(403, "cross-origin request refused")
        if path == "/api/login":
            return self._login()
        caller = self._caller()
        if caller is None:
            return
        if path == "/api/logout":
            self.web.auth.sessions.drop(parse_cookies(self.headers.get("Cookie")).get(COOKIE))
            return self._json(200, {"ok": True}, {"Set-Cookie": f"{COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict"})
        action = path[len("/api/actions/"):] if path.startswith("/api/actions/") else None
        if action not in ACTIONS:
            return self._error(404, "no such action")
        if caller.role != "admin":
            log.warning("installer's page: refused %r for the %s role from %s", action, caller.role, self.client)
            return self._error(403, f"'{action}' needs the admin role")
        if not caller.csrf_ok(self.headers.get("X-CSRF-Token")):
            return self._error(403, "missing or wrong X-CSRF-Token")
        try:
            done = self.web.act(action, self.client)
        except ConfigError as exc:
            return self._error(400, f"config not reloaded: {exc}")
        except WebError as exc:
            return self._error(503, str(exc))
        log.warning("installer's page: %s by the admin from %s: %s", action, self.client, done)
        return self._json(200, {"ok": True, "done": done})

    def _login(self):
        auth = self.web.auth
        if auth.limiter.blocked(self.client):
            return self._error(429, "too many failed logins from this address: wait a minute", {"Retry-After": "60"})
        try:
            token = str(self._body().get("token", ""))
        except (ValueError, UnicodeDecodeError):
            token = ""
        role = auth.tokens.role_of(token)
        if role is None:
            auth.limiter.failed(self.client)
            log.warning("installer's page: wrong token from %s", self.client)
            return self._error(401, "wrong token")
        sid, session = auth.sessions.create(role)
        secure = "; Secure" if self.web.tls else ""
        cookie = f"{COOKIE}={sid}; Path=/; HttpOnly; SameSite=Strict; Max-Age={int(auth.sessions.seconds)}{secure}"
        return self._json(200, {"role": role, "csrf": session.csrf}, {"Set-Cookie": cookie})

    def _static(self, name: str):
        if name not in STATIC:
            return self._error(404, "no such file")
        body = resources.files("maskgate.edge.web").joinpath("static", name).read_bytes()
        return self._send(200, body, STATIC[name])

    def _events(self, query):
        kind = (query.get("kind") or [""])[0] or None
        if kind is not None and kind not in EVENT_KINDS:
            return self._error(400, f"unknown event kind {kind!r}")
        try:
            limit = min(500, max(1, int((query.get("limit") or ["50"])[0])))
            before = int(query["before"][0]) if query.get("before") else None
        except ValueError:
            return self._error(400, "limit and before are whole numbers")
        return self._json(200, {"events": self.web.events(kind, limit, before), "kinds": list(EVENT_KINDS)})

    def _live(self, query):
        try:
            after = int((query.get("after") or ["0"])[0])
        except ValueError:
            after = 0
        got = self.web.live.jpeg(after)
        if got is None:
            return self._error(503, "no frame yet")
        seq, jpeg = got
        return self._send(200, jpeg, "image/jpeg", {"X-Frame-Seq": str(seq)})

    def _snapshot(self, query):
        name = (query.get("name") or [""])[0]
        if not name.startswith("denied_") or not name.endswith(".jpg") or "/" in name or "\\" in name:
            return self._error(404, "no such snapshot")
        path = snapshot_folder(self.web.cfg) / name
        if not self.web.cfg.events.snapshots or not path.is_file():
            return self._error(404, "no such snapshot")
        return self._send(200, path.read_bytes(), "image/jpeg")


