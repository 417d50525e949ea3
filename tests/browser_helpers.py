"""Headless Chromium (Debian's package) driven over the DevTools protocol on a pipe.

``--remote-debugging-pipe`` makes Chromium read commands from fd 3 and write answers to fd 4, each
a JSON message ended by a NUL byte: no websocket client, no driver, no download.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,1000", "--remote-debugging-pipe"]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _above(fd: int, lowest: int) -> int:
    """``fd`` moved to a number >= ``lowest`` (inheritable, the original closed)."""
    import fcntl

    new = fcntl.fcntl(fd, fcntl.F_DUPFD, lowest)
    os.close(fd)
    return new


class DevToolsError(RuntimeError):
    pass


class Browser:
    """One Chromium with a fresh profile in ``profile``; :meth:`page` opens a tab."""

    def __init__(self, profile: Path):
        exe = chromium_path()
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        to_child_r, from_child_w = (_above(fd, 10) for fd in (to_child_r, from_child_w))  # never 3 or 4 already
        # a shell puts the pipe ends on fds 3 and 4 for Chromium, whatever numbers they have here
        script = f'exec 3<&{to_child_r} 4>&{from_child_w} {to_child_r}<&- {from_child_w}>&-; exec "$0" "$@"'
        self.proc = subprocess.Popen(["bash", "-c", script, exe, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                     pass_fds=(to_child_r, from_child_w), stdout=subprocess.DEVNULL,
                                     stderr=open(profile.parent / "chromium.log", "wb"))
        os.close(to_child_r)
        os.close(from_child_w)
        self._next = 0
        self._buf = b""
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30.0) -> dict:
        self._next += 1
        msg = {"id": self._next, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            for reply in self._read(deadline):
                if reply.get("id") == self._next:
                    if "error" in reply:
                        raise DevToolsError(f"{method}: {reply['error']}")
                    return reply.get("result", {})
                self.events.append(reply)

    def _read(self, deadline: float) -> list[dict]:
        import select

        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_child], [], [], left)[0]:
                raise DevToolsError("no answer from Chromium")
            chunk = os.read(self._from_child, 1 << 20)
            if not chunk:
                raise DevToolsError("Chromium closed the pipe")
            self._buf += chunk
        *messages, self._buf = self._buf.split(b"\0")
        return [json.loads(m) for m in messages if m]

    def page(self, url: str) -> "Page":
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        page.send("Page.enable")
        page.send("Runtime.enable")
        page.send("Page.navigate", {"url": url})
        return page

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5.0)
        except (DevToolsError, OSError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_child, self._from_child):
            try:
                os.close(fd)
            except OSError:
                pass


class Page:
    def __init__(self, browser: Browser, session: str):
        self.browser, self.session = browser, session

    def send(self, method: str, params: dict | None = None, timeout: float = 30.0) -> dict:
        return self.browser.send(method, params, self.session, timeout)

    def js(self, expression: str):
        """The value of a JavaScript expression (promises awaited)."""
        out = self.send("Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True})
        if "exceptionDetails" in out:
            raise DevToolsError(f"{expression}: {out['exceptionDetails'].get('exception', {}).get('description')}")
        return out["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20.0, what: str = "", show: str = ""):
        """Poll ``expression`` until it is truthy; its value.  On time-out the error adds the value of ``show``."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.js(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                seen = f"; {show} = {self.js(show)!r}" if show else ""
                raise AssertionError(f"timed out waiting for {what or expression}{seen}")
            time.sleep(0.1)

    def type_into(self, element_id: str, text: str) -> None:
        """Focus an input and type ``text`` as keystrokes would."""
        self.js(f"document.getElementById({json.dumps(element_id)}).focus()")
        self.send("Input.insertText", {"text": text})

    def click(self, selector: str) -> None:
        self.js(f"document.querySelector({json.dumps(selector)}).click()")

    def screenshot(self, path: Path) -> Path:
        data = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})["data"]
        path.write_bytes(base64.b64decode(data))
        return path
