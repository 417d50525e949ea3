"""Real servers on loopback for the notification tests: mosquitto, an SMTP server (aiosmtpd), an HTTP server.

Each server runs on a free 127.0.0.1 port with files in the test's tmp_path, and can be stopped and
started again on the same port to simulate an outage.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/local/sbin"])


def need_tool(name: str) -> str:
    """The path of ``name``; skip the test without it, or fail when MASKGATE_REQUIRE_TOOLS=1 (CI)."""
    path = shutil.which(name, path=SBIN_PATH)
    if path is None:
        message = f"{name} is not installed (apt-get install {'mosquitto' if name.startswith('mosquitto') else name})"
        if os.environ.get("MASKGATE_REQUIRE_TOOLS") == "1":
            pytest.fail(message + " but MASKGATE_REQUIRE_TOOLS=1")
        pytest.skip(message)
    return path


def drop_proxies(monkeypatch) -> None:
    """Posts go to loopback: a proxy from the environment must not take them elsewhere."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.05, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy (returned) or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1/localhost and its key, made with the openssl command."""
    openssl = need_tool("openssl")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )
    return cert, key


def write_secret(path: Path, value: str) -> Path:
    path.write_text(value + "\n")
    path.chmod(0o600)
    return path


# ---------------------------------------------------------------------------------------------- #
# mosquitto


class Mosquitto:
    """A mosquitto broker of our own: ``start()``, ``kill()`` (SIGKILL, as in a crash), ``start()`` again."""

    def __init__(self, folder: Path, *, users: dict[str, str] | None = None, tls: tuple[Path, Path] | None = None):
        self.exe = need_tool("mosquitto")
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log = folder / "mosquitto.log"
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence true",
            f"persistence_location {folder}/",
            f"user {getpass.getuser()}",
        ]
        if tls:
            cert, key = tls
            lines += [f"certfile {cert}", f"keyfile {key}"]
        if users:
            passwd = need_tool("mosquitto_passwd")
            pwfile = folder / "passwd"
            for i, (user, password) in enumerate(users.items()):
                subprocess.run([passwd, "-b", *(["-c"] if i == 0 else []), str(pwfile), user, password],
                               check=True, capture_output=True)
            lines += ["allow_anonymous false", f"password_file {pwfile}"]
        else:
            lines.append("allow_anonymous true")
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self) -> "Mosquitto":
        assert self.proc is None or self.proc.poll() is not None
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([self.exe, "-c", str(self.conf)], stdout=log, stderr=subprocess.STDOUT)
        wait_until(lambda: port_open(self.port) or self.proc.poll() is not None, 10, what="mosquitto to listen")
        if self.proc.poll() is not None:
            raise RuntimeError(f"mosquitto exited: {self.log.read_text()[-2000:]}")
        return self

    def save(self) -> None:
        """Write the persistence database now (subscriptions of persistent sessions survive a kill)."""
        db = self.folder / "mosquitto.db"
        before = db.stat().st_mtime_ns if db.exists() else 0
        self.proc.send_signal(signal.SIGUSR1)
        wait_until(lambda: db.exists() and db.stat().st_mtime_ns != before, 10, what="mosquitto to save")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        wait_until(lambda: not port_open(self.port), 10, what="the broker port to close")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


class Subscriber:
    """A paho client that records every message on ``topics``; reconnects by itself."""

    def __init__(self, port: int, topics=("#",), *, client_id: str = "", clean_session: bool = True,
                 username: str | None = None, password: str | None = None, ca_file: Path | None = None):
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.topics = list(topics)
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session,
                                  protocol=mqtt.MQTTv311)
        if username:
            self.client.username_pw_set(username, password)
        if ca_file:
            self.client.tls_set(ca_certs=str(ca_file))
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect_async("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        assert self.subscribed.wait(15), "test subscriber could not subscribe"

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if not reason_code.is_failure:
            client.subscribe([(t, 1) for t in self.topics])

    def _on_message(self, client, userdata, msg):
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def on(self, topic: str) -> list[bytes]:
        with self.lock:
            return [p for t, p, _ in self.messages if t == topic]

    def json_on(self, topic: str) -> list[dict]:
        return [json.loads(p) for p in self.on(topic) if p]

    def last(self, topic: str) -> bytes | None:
        found = self.on(topic)
        return found[-1] if found else None

    def clear(self) -> None:
        with self.lock:
            self.messages.clear()

    def publish(self, topic: str, payload: str, *, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# ---------------------------------------------------------------------------------------------- #
# SMTP


class SmtpServer:
    """aiosmtpd on loopback that keeps every message; optional AUTH and STARTTLS."""

    def __init__(self, *, users: dict[str, str] | None = None, tls: tuple[Path, Path] | None = None,
                 port: int | None = None):
        pytest.importorskip("aiosmtpd")
        self.port = port or free_port()
        self.users = users
        self.tls = tls
        self.messages: list = []  # email.message.Message
        self.envelopes: list = []
        self.logins: list[str] = []
        self.tls_sessions: list[bool] = []
        self.controller = None

    def start(self) -> "SmtpServer":
        import ssl
        from email import message_from_bytes

        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        server = self

        class Handler:
            async def handle_DATA(self, smtp, session, envelope):
                server.envelopes.append(envelope)
                server.messages.append(message_from_bytes(envelope.original_content or envelope.content))
                server.tls_sessions.append(session.ssl is not None)
                return "250 OK"

        def authenticator(smtp, session, envelope, mechanism, auth_data):
            login = auth_data.login.decode()
            ok = server.users is not None and server.users.get(login) == auth_data.password.decode()
            if ok:
                server.logins.append(login)
            return AuthResult(success=ok)

        kwargs = {}
        if self.users is not None:
            kwargs.update(authenticator=authenticator, auth_required=True, auth_require_tls=self.tls is not None)
        if self.tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(self.tls[0]), str(self.tls[1]))
            kwargs.update(tls_context=context, require_starttls=True)
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, **kwargs)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


# ---------------------------------------------------------------------------------------------- #
# HTTP


class WebhookServer:
    """A local http.server that records POSTs; ``answers`` is a list of status codes to use first."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.requests: list[tuple[int, str, dict, bytes]] = []  # (status answered, path, headers, body)
        self.answers: list[int] = []
        self.lock = threading.Lock()
        self.httpd: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> "WebhookServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with server.lock:
                    code = server.answers.pop(0) if server.answers else 200
                    server.requests.append((code, self.path, dict(self.headers), body))
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    def clear(self) -> None:
        with self.lock:
            self.requests.clear()

    def accepted(self) -> list[tuple[dict, bytes]]:
        """(headers, body) of the requests answered 200, in arrival order."""
        with self.lock:
            return [(h, b) for code, _, h, b in self.requests if code == 200]

    def bodies(self) -> list[dict]:
        return [json.loads(b) for _, b in self.accepted()]


def start_notifier(cfg, store, cleanup, **kwargs):
    """An event log for door1/front whose events wake a started Notifier; stopped at teardown."""
    from maskgate.edge.alerts import Notifier
    from maskgate.edge.events import EventLog

    log = EventLog(store, device="door1", door="front")
    notifier = Notifier(cfg, store, **kwargs)
    log.add_listener(notifier.wake)
    notifier.start()
    cleanup(lambda: notifier.stop(2))
    return log, notifier
