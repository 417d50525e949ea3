"""Events: every state change of the gate, stored durably and fanned out.

An :class:`Event` is recorded once through :class:`EventLog`, which writes it to the device's
SQLite database (:class:`EventStore`, WAL mode) and, when asked, to a JSON-lines file and to
in-process listeners.  The database doubles as the notification outbox: each delivery channel
(MQTT, e-mail, webhook) keeps a cursor — the last event id it delivered — and reads what came after
it, in order.  A broker or mail server that is down therefore loses nothing and never blocks the
frame loop; channels catch up when the other side is back.  Every event carries a unique ``uid`` so
that consumers can drop the duplicates at-least-once delivery may bring.

Events are rare (state changes, not frames), so writing them synchronously is cheap; the per-frame
path never touches this module.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from maskgate.errors import MaskgateError

log = logging.getLogger(__name__)

#: Version of the JSON shape of an event (``"v"``), bumped on incompatible changes.
EVENT_SCHEMA_VERSION = 1

#: The kinds of event the gate records.
EVENT_KINDS = (
    "started",  # the gate is up, lock locked
    "stopped",  # the gate shut down, lock locked
    "unlocked",  # a masked visitor (or exit button / remote command) opened the lock
    "locked",  # the lock closed again
    "denied",  # a visitor was refused (no mask, mask worn wrong, too many people); in soft mode logged only
    "allowed",  # soft enforcement: a masked visitor, the lock not driven by the decision
    "fault",  # camera stalled, model or hardware error: lock forced locked
    "recovered",  # the fault cleared
    "exit_request",  # request-to-exit button pressed
    "door_opened",
    "door_closed",
    "held_open",  # door open longer than policy.held_open_seconds
    "remote_unlock",  # unlock command received over MQTT
    "crowd",  # monitor mode: people count / masked share / distancing violations
)


@dataclass(frozen=True)
class Event:
    """One state change.  ``ts`` is the frame clock (seconds), ``frame`` the frame index (-1 if none)."""

    event: str
    ts: float
    frame: int = -1
    decision: str | None = None
    p_mask: float | None = None
    faces: int | None = None
    infer_ms: float | None = None
    detail: str | None = None
    device: str = ""
    door: str = ""
    uid: str = field(default_factory=lambda: uuid.uuid4().hex)
    wall_time: float = field(default_factory=time.time)
    seq: int | None = None  # database id, set once stored

    def to_json(self) -> dict:
        d = asdict(self)
        d["v"] = EVENT_SCHEMA_VERSION
        return {k: v for k, v in d.items() if v is not None}


_COLUMNS = ("uid", "event", "ts", "frame", "decision", "p_mask", "faces", "infer_ms", "detail", "device", "door", "wall_time")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uid TEXT NOT NULL UNIQUE,
    event TEXT NOT NULL,
    ts REAL NOT NULL,
    frame INTEGER NOT NULL,
    decision TEXT,
    p_mask REAL,
    faces INTEGER,
    infer_ms REAL,
    detail TEXT,
    device TEXT NOT NULL,
    door TEXT NOT NULL,
    wall_time REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS cursors (
    channel TEXT PRIMARY KEY,
    last_id INTEGER NOT NULL
);
"""


class EventStoreError(MaskgateError, OSError):
    """The event database cannot be opened or written."""


class EventStore:
    """The SQLite event database and the outbox cursors of the delivery channels.

    Safe to use from several threads: each thread gets its own connection (SQLite connections must
    not cross threads); WAL mode lets readers and the writer proceed concurrently.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EventStoreError(f"cannot create the event database folder {self.path.parent}: {exc.strerror}") from None
        self._local = threading.local()
        conn = self._conn()
        with conn:
            conn.executescript(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.Error as exc:
                raise EventStoreError(f"cannot open the event database {self.path}: {exc}") from None
            self._local.conn = conn
        return conn

    def append(self, event: Event) -> Event:
        """Store ``event``; returns it with ``seq`` set to its database id."""
        values = tuple(getattr(event, c) for c in _COLUMNS)
        try:
            cur = self._conn().execute(
                f"INSERT INTO events ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})", values
            )
        except sqlite3.Error as exc:
            raise EventStoreError(f"cannot write to the event database {self.path}: {exc}") from None
        return _with_seq(event, cur.lastrowid)

    def after(self, last_id: int, limit: int = 100) -> list[Event]:
        """Events with id greater than ``last_id``, oldest first."""
        rows = self._conn().execute(
            f"SELECT id, {', '.join(_COLUMNS)} FROM events WHERE id > ? ORDER BY id LIMIT ?", (last_id, limit)
        ).fetchall()
        return [_row_to_event(r) for r in rows]

    def all(self) -> list[Event]:
        return self.after(0, limit=-1)

    def recent(self, limit: int = 50, kind: str | None = None, before: int | None = None) -> list[Event]:
        """The latest events (of one ``kind`` if given, with id below ``before`` if given), newest first."""
        where, args = [], []
        if kind:
            where.append("event = ?")
            args.append(kind)
        if before is not None:
            where.append("id < ?")
            args.append(before)
        sql = f"SELECT id, {', '.join(_COLUMNS)} FROM events {'WHERE ' + ' AND '.join(where) if where else ''} ORDER BY id DESC LIMIT ?"
        return [_row_to_event(r) for r in self._conn().execute(sql, (*args, limit)).fetchall()]

    def cursor(self, channel: str) -> int:
        """Id of the last event ``channel`` delivered (0: none yet)."""
        row = self._conn().execute("SELECT last_id FROM cursors WHERE channel = ?", (channel,)).fetchone()
        return row[0] if row else 0

    def start_channel(self, channel: str) -> int:
        """Give a channel seen for the first time a cursor at the end of the history; returns its cursor.

        A channel enabled on a device that already holds months of events starts with what happens
        from now on, instead of replaying the history to the broker or the mailbox.
        """
        self._conn().execute(
            "INSERT OR IGNORE INTO cursors (channel, last_id) VALUES (?, (SELECT coalesce(max(id), 0) FROM events))",
            (channel,),
        )
        return self.cursor(channel)

    def pending(self, channel: str, limit: int = 100) -> list[Event]:
        """The events ``channel`` has not delivered yet, oldest first."""
        return self.after(self.cursor(channel), limit)

    def ack(self, channel: str, event_id: int) -> None:
        """Record that ``channel`` delivered every event up to ``event_id``."""
        self._conn().execute(
            "INSERT INTO cursors (channel, last_id) VALUES (?, ?) "
            "ON CONFLICT(channel) DO UPDATE SET last_id = max(last_id, excluded.last_id)",
            (channel, event_id),
        )

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _with_seq(event: Event, seq: int) -> Event:
    d = asdict(event)
    d["seq"] = seq
    return Event(**d)


def _row_to_event(row) -> Event:
    seq, *values = row
    return Event(**dict(zip(_COLUMNS, values)), seq=seq)


class JsonLinesWriter:
    """Appends each event as one JSON object per line (``--events FILE``), flushed at once."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self._fh = open(self.path, "a", encoding="utf-8", buffering=1)
        except OSError as exc:
            raise EventStoreError(f"cannot open the events file {self.path}: {exc.strerror}") from None

    def __call__(self, event: Event) -> None:
        self._fh.write(json.dumps(event.to_json(), sort_keys=True) + "\n")

    def close(self) -> None:
        self._fh.close()


class EventLog:
    """The one place the gate records events: the store first, then every listener.

    A listener that raises is logged and skipped; it can never stop an event from being stored or
    the lock from being driven.
    """

    def __init__(self, store: EventStore | None, *, device: str = "", door: str = "",
                 listeners: Iterable[Callable[[Event], None]] = ()):
        self.store = store
        self.device = device
        self.door = door
        self.listeners: list[Callable[[Event], None]] = list(listeners)
        self.recorded: list[Event] = []  # this run's events, in order (small: state changes only)

    def add_listener(self, listener: Callable[[Event], None]) -> None:
        self.listeners.append(listener)

    def record(self, event: str, ts: float, frame: int = -1, **fields) -> Event:
        if event not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {event!r}")
        ev = Event(event=event, ts=round(float(ts), 3), frame=frame, device=self.device, door=self.door, **fields)
        if self.store is not None:
            ev = self.store.append(ev)
        self.recorded.append(ev)
        for listener in self.listeners:
            try:
                listener(ev)
            except Exception:  # noqa: BLE001 - a broken listener must not break the gate
                log.exception("event listener %r failed on %s", listener, ev.event)
        return ev
