"""Signed remote commands: what an MQTT message must be before it may open the door.

A command is one JSON object on ``<base>/lock/set``::

    {"command": "unlock", "ts": 1764622000.5, "nonce": "5f1c...", "sig": "<hex HMAC-SHA256>"}

``sig`` is the HMAC-SHA256, under the key in ``mqtt.command_key_file``, of
``"<command>|<ts>|<nonce>|<topic>"`` (``ts`` as written in the message).  The gate accepts it only when
the signature matches, ``ts`` is within ``mqtt.command_max_age_seconds`` of its own wall clock, the
command was signed after this gate started, and the nonce has not been seen: a replayed, stale,
retained, unsigned or malformed message does nothing.  A gate whose wall clock is still wrong after
boot (1970, or where the last shutdown left it) finds every command stale and refuses it: fail secure.

This file needs nothing but Python's standard library, so a sender can run a copy of it:
``python3 commands.py KEY_FILE TOPIC`` prints a fresh signed unlock (Home Assistant's ``shell_command``,
edge/alerts/README.md).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import secrets
import time
from collections import OrderedDict

#: commands a signed message may carry
COMMANDS = ("unlock",)
#: the largest message looked at; anything longer is refused unread
MAX_MESSAGE_BYTES = 1024
#: nonces remembered (each for the freshness window)
MAX_NONCES = 4096


def signed_text(command: str, ts: str, nonce: str, topic: str) -> bytes:
    return f"{command}|{ts}|{nonce}|{topic}".encode("utf-8")


def sign_command(key: bytes, command: str, topic: str, *, ts: float | None = None, nonce: str | None = None) -> str:
    """The JSON payload of a signed command (for senders: a desk app, a script, the tests)."""
    ts_text = repr(float(time.time() if ts is None else ts))
    nonce = nonce or secrets.token_hex(16)
    sig = hmac.new(key, signed_text(command, ts_text, nonce, topic), hashlib.sha256).hexdigest()
    return json.dumps({"command": command, "ts": float(ts_text), "nonce": nonce, "sig": sig})


class CommandVerifier:
    """Checks signed commands; remembers nonces so that a replay is refused."""

    def __init__(self, key: bytes, *, max_age: float, clock=time.time):
        self.key = key
        self.max_age = max_age
        self.clock = clock
        self.started = clock()
        self._seen: OrderedDict[str, float] = OrderedDict()

    def verify(self, topic: str, payload: bytes) -> tuple[str | None, str]:
        """(command, "") when ``payload`` is an authentic, fresh command; else (None, why it was refused)."""
        if len(payload) > MAX_MESSAGE_BYTES:
            return None, f"{len(payload)} bytes, more than {MAX_MESSAGE_BYTES}"
        try:
            msg = json.loads(payload.decode("utf-8"), parse_constant=lambda c: None)
        except (UnicodeDecodeError, ValueError, RecursionError):
            return None, "not a signed JSON command"
        if not isinstance(msg, dict):
            return None, "not a signed JSON command"
        command, ts, nonce, sig = (msg.get(k) for k in ("command", "ts", "nonce", "sig"))
        if command not in COMMANDS:
            return None, f"unknown command {str(command)[:40]!r}"
        if (isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts)
                or not isinstance(nonce, str) or not 8 <= len(nonce) <= 64 or not isinstance(sig, str)):
            return None, "a command needs a numeric ts, a nonce of 8 to 64 characters and a sig"
        expected = hmac.new(self.key, signed_text(command, repr(float(ts)), nonce, topic), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, sig.lower()):
            return None, "bad signature"
        now = self.clock()
        if abs(now - ts) > self.max_age:
            return None, f"stale: signed {now - ts:.0f} s from now (at most {self.max_age:g} s)"
        if ts < self.started - 1.0:
            return None, "signed before this gate started"
        if nonce in self._seen:
            return None, "replayed (nonce already used)"
        self._remember(nonce, now)
        return command, ""

    def _remember(self, nonce: str, now: float) -> None:
        while self._seen and (len(self._seen) >= MAX_NONCES or next(iter(self._seen.values())) < now - 2 * self.max_age):
            self._seen.popitem(last=False)
        self._seen[nonce] = now


def main(argv: list[str] | None = None) -> int:
    """``python3 commands.py KEY_FILE TOPIC``: print a fresh signed unlock command for ``TOPIC``."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python3 commands.py KEY_FILE TOPIC  (prints a signed unlock command for TOPIC)", file=sys.stderr)
        return 2
    try:
        with open(args[0], encoding="utf-8") as f:
            key = f.read().strip()  # as the gate reads mqtt.command_key_file
    except (OSError, UnicodeDecodeError) as exc:
        print(f"commands.py: cannot read the key file {args[0]}: {exc}", file=sys.stderr)
        return 1
    if not key:
        print(f"commands.py: the key file {args[0]} is empty", file=sys.stderr)
        return 1
    print(sign_command(key.encode("utf-8"), "unlock", args[1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
