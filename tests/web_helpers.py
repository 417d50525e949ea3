"""A gate with its installer's page, running on a thread over a paced replay, and a tiny HTTP client."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from pathlib import Path

from maskgate.edge.actuators import Hardware
from maskgate.edge.config import Config
from maskgate.edge.gate import Gate
from maskgate.edge.sources import open_source
from maskgate.edge.sources.replay import PacedSource
from maskgate.edge.web import WebServer
from maskgate.edge.web.tokens import Tokens, write_tokens

ADMIN = "admin-token-for-tests-0123456789"
VIEWER = "viewer-token-for-tests-0123456789"


def web_config(tmp: Path, **sections) -> Config:
    secret = tmp / "web-secret.toml"
    if not secret.exists():
        write_tokens(secret, Tokens(admin=ADMIN, viewer=VIEWER))
    web = {"enabled": True, "port": 0, "secret_file": str(secret), **sections.pop("web", {})}
    events = {"database": str(tmp / "events.db"), **sections.pop("events", {})}
    return Config().replace(web=web, events=events, **sections)


class GateWithPage:
    """``with GateWithPage(cfg, clip, factory) as g:`` the gate replays ``clip`` in real time, page on ``g.url``."""

    def __init__(self, cfg: Config, clip: Path, factory, *, paced: bool = True):
        source = open_source(str(clip), cfg.camera)
        self.web = WebServer(cfg)
        self.gate = Gate(cfg, source=PacedSource(source) if paced else source,
                         hardware=Hardware(cfg.gpio, pin_factory=factory))
        self.web.attach(self.gate)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.gate.run()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    @property
    def url(self) -> str:
        return self.web.url

    def __enter__(self) -> "GateWithPage":
        self.web.start()
        self._thread.start()
        return self

    def wait(self, timeout: float = 60.0) -> None:
        self._thread.join(timeout)

    def __exit__(self, *exc) -> None:
        self.gate.stop()
        self._thread.join(30)
        self.web.stop()


def http(method: str, url: str, *, token: str | None = None, body: dict | None = None, headers: dict | None = None):
    """(status, headers, parsed JSON or bytes) of one request; errors are answers too."""
    data = json.dumps(body).encode() if body is not None else (b"{}" if method == "POST" else None)
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, hdrs, raw = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        status, hdrs, raw = e.code, e.headers, e.read()
    if hdrs.get("Content-Type", "").startswith("application/json"):
        return status, hdrs, json.loads(raw)
    return status, hdrs, raw
