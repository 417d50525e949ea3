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

Durability, per kind (:data:`DURABLE_KINDS`): a security event — a decision, an unlock, a fault, a
door or button input — is committed with ``synchronous=FULL`` (the WAL is fsynced before
:meth:`EventStore.append` returns), so once it is reported it survives a power cut.  Routine events
(``started``, ``stopped``, ``locked``, ``recovered``, ``crowd``) use ``synchronous=NORMAL``: they
survive a crash of the process, and a power cut may lose the last of them (the next security event's
fsync also makes them durable).  A database found corrupt at start is moved aside, kept for
forensics, and a new one started (:attr:`EventStore.moved_aside`).  Retention keeps the newest
``max_events`` events, so the card never fills up.  A disk that is full does not stop the gate: the
:class:`EventLog` keeps what could not be written in memory and writes it when space returns; the
listeners get those events at once, without a ``seq`` (the notifier delivers them from memory, and not
again once they are written: :mod:`maskgate.edge.alerts.unstored`).  A database that a full disk keeps
from being opened at start is opened by the first write that finds space (:attr:`EventStore.unopened`).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from maskgate.edge.clock import wall_clock_synchronised
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

#: Kinds committed with an fsync before they are reported (they must survive a power cut).
DURABLE_KINDS = frozenset(EVENT_KINDS) - {"started", "stopped", "locked", "recovered", "crowd"}

#: How a storage fault's ``detail`` starts (:class:`EventLog`): the database cannot be written, the gate runs on.
STORAGE_FAULT_PREFIX = "storage:"

#: How many appends pass between two applications of the retention limit.
PRUNE_EVERY = 256


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
    wall_time: float = field(default_factory=lambda: time.time())  # looked up at each call: the clock may be replaced
    clock_synced: bool | None = field(default_factory=wall_clock_synchronised)  # was wall_time trustworthy?
    seq: int | None = None  # database id, set once stored

    def to_json(self) -> dict:
        d = asdict(self)
        d["v"] = EVENT_SCHEMA_VERSION
        return {k: v for k, v in d.items() if v is not None}


def is_storage_fault(event: Event) -> bool:
    """A ``fault`` that says the event database cannot be written; unlike other faults it locks nothing."""
    return event.event == "fault" and (event.detail or "").startswith(STORAGE_FAULT_PREFIX)


_COLUMNS = ("uid", "event", "ts", "frame", "decision", "p_mask", "faces", "infer_ms", "detail", "device", "door", "wall_time",
            "clock_synced")

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
    wall_time REAL NOT NULL,
    clock_synced INTEGER
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
    not cross threads); WAL mode lets readers and the writer proceed concurrently.  ``max_events``
    (0: unlimited) bounds the history: the oldest events beyond it are deleted.
    """

    def __init__(self, path: str | Path, *, max_events: int = 0):
        self.path = Path(path)
        self.max_events = max_events
        self.moved_aside: Path | None = None  # where a corrupt database found at start was moved
        self._appends = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EventStoreError(f"cannot create the event database folder {self.path.parent}: {exc.strerror}") from None
        self._local = threading.local()
        self.unopened: str | None = None  # why the database could not be opened at start (a full disk)
        try:
            self._open()
        except EventStoreError as exc:
            if not disk_full(self.path.parent):
                raise
            # Refusing to start would keep the door locked and restart the service forever: run, and open
            # the database on the first write that finds space (the event log keeps the events meanwhile).
            self.close()
            self.unopened = str(exc)
            log.error("%s: the disk is full; events are kept in memory until it can be opened", exc)
            return
        self.prune()

    def _open(self) -> None:
        try:
            self._open_schema(self._conn())
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and not _is_corruption(exc):
                raise EventStoreError(f"cannot open the event database {self.path}: {exc}") from None
            self.close()
            self.moved_aside = self._move_aside(exc)
            try:
                self._open_schema(self._conn())
            except sqlite3.Error as exc2:
                raise EventStoreError(f"cannot create a new event database {self.path}: {exc2}") from None

    @staticmethod
    def _open_schema(conn: sqlite3.Connection) -> None:
        check = conn.execute("PRAGMA quick_check").fetchone()
        if check is None or check[0] != "ok":
            raise sqlite3.DatabaseError(f"quick_check: {check[0] if check else 'no answer'}")
        with conn:
            conn.executescript(_SCHEMA)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(events)")}
        if "clock_synced" not in columns:  # a database written before the column existed
            conn.execute("ALTER TABLE events ADD COLUMN clock_synced INTEGER")

    def _move_aside(self, exc: Exception) -> Path:
        """Keep a corrupt database (and its WAL) for forensics under a new name; returns that name."""
        stamp = time.strftime("%Y%m%dT%H%M%S")
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while target.exists():
            n += 1
            target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
        try:
            for suffix in ("", "-wal", "-shm"):
                part = Path(f"{self.path}{suffix}")
                if part.exists():
                    part.rename(Path(f"{target}{suffix}"))
        except OSError as err:
            raise EventStoreError(f"the event database {self.path} is corrupt ({exc}) and cannot be moved aside: "
                                  f"{err.strerror}") from None
        log.error("event database %s is corrupt (%s): moved aside to %s, a new one started", self.path, exc, target)
        return target

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                if self.unopened is not None:  # not opened at start (a full disk): check and create it now
                    self._open_schema(conn)
                    log.warning("event database %s opened (it could not be at start: the disk was full)", self.path)
                    self.unopened = None
            except sqlite3.DatabaseError as exc:
                if conn is not None:
                    conn.close()
                if _is_corruption(exc) and self.unopened is None:
                    raise
                raise EventStoreError(f"cannot open the event database {self.path}: {exc}") from None
            self._local.conn = conn
            self._local.durable = False
        return conn

    def append(self, event: Event) -> Event:
        """Store ``event``; returns it with ``seq`` set to its database id.

        A kind in :data:`DURABLE_KINDS` is on disk (fsynced) when this returns.
        """
        values = tuple(getattr(event, c) for c in _COLUMNS)
        try:
            conn = self._conn()
            durable = event.event in DURABLE_KINDS
            if durable != self._local.durable:
                conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
                self._local.durable = durable
            cur = conn.execute(
                f"INSERT INTO events ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})", values
            )
        except sqlite3.Error as exc:
            raise EventStoreError(f"cannot write to the event database {self.path}: {exc}") from None
        self._appends += 1
        if self.max_events and self._appends % max(1, min(PRUNE_EVERY, self.max_events // 10)) == 0:
            self.prune()
        return _with_seq(event, cur.lastrowid)

    def prune(self) -> int:
        """Apply the retention limit: delete the oldest events beyond ``max_events``; returns how many."""
        if not self.max_events:
            return 0
        try:
            cur = self._conn().execute(
                "DELETE FROM events WHERE id <= (SELECT max(id) FROM events) - ?", (self.max_events,))
        except (sqlite3.Error, EventStoreError) as exc:
            log.warning("event retention: could not delete old events from %s: %s", self.path, exc)
            return 0
        return cur.rowcount

    def count(self) -> int:
        return self._conn().execute("SELECT count(*) FROM events").fetchone()[0]

    def last(self) -> Event | None:
        """The newest stored event, if any."""
        row = self._conn().execute(f"SELECT id, {', '.join(_COLUMNS)} FROM events ORDER BY id DESC LIMIT 1").fetchone()
        return _row_to_event(row) if row else None

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
        try:
            self._conn().execute(
                "INSERT OR IGNORE INTO cursors (channel, last_id) VALUES (?, (SELECT coalesce(max(id), 0) FROM events))",
                (channel,),
            )
            return self.cursor(channel)
        except sqlite3.Error as exc:
            raise EventStoreError(f"cannot start the cursor of {channel} in {self.path}: {exc}") from None

    def pending(self, channel: str, limit: int = 100) -> list[Event]:
        """The events ``channel`` has not delivered yet, oldest first."""
        return self.after(self.cursor(channel), limit)

    def ack(self, channel: str, event_id: int) -> None:
        """Record that ``channel`` delivered every event up to ``event_id``; EventStoreError if it cannot be written."""
        try:
            self._conn().execute(
                "INSERT INTO cursors (channel, last_id) VALUES (?, ?) "
                "ON CONFLICT(channel) DO UPDATE SET last_id = max(last_id, excluded.last_id)",
                (channel, event_id),
            )
        except sqlite3.Error as exc:
            raise EventStoreError(f"cannot save the cursor of {channel} in {self.path}: {exc}") from None

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


#: Less free space than this in the database's folder: a database that cannot be opened is taken to be
#: short of space (the gate runs and opens it later), not misconfigured (the gate refuses to start).
FULL_DISK_BYTES = 256 * 1024


def disk_full(folder: Path) -> bool:
    """Whether the file system holding ``folder`` has (almost) no space left for this user."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < FULL_DISK_BYTES


def _is_corruption(exc: sqlite3.DatabaseError) -> bool:
    """Whether SQLite says the file is damaged or not a database (as opposed to locked, full, read-only)."""
    if not isinstance(exc, sqlite3.OperationalError):
        return True  # DatabaseError proper: "file is not a database", "database disk image is malformed"
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text or "quick_check" in text


def _with_seq(event: Event, seq: int) -> Event:
    d = asdict(event)
    d["seq"] = seq
    return Event(**d)


def _row_to_event(row) -> Event:
    seq, *values = row
    fields = dict(zip(_COLUMNS, values))
    if fields["clock_synced"] is not None:
        fields["clock_synced"] = bool(fields["clock_synced"])
    return Event(**fields, seq=seq)


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
    the lock from being driven.  A store that cannot be written (a full disk) does not stop the gate
    either: the event still goes to the listeners (without a ``seq``: not stored), one ``fault``
    (storage) says so, and the events that could not be written wait in memory (:data:`UNSTORED_LIMIT`
    at most) until a later write succeeds, when they are stored in order, with the same uids, and a
    ``recovered`` event follows.
    """

    #: events kept in memory while the store cannot be written (the oldest are dropped beyond it)
    UNSTORED_LIMIT = 10000
    #: this run's events kept for inspection (tests, the CLI summary); a deque, so a year-long run stays bounded
    RECORDED_LIMIT = 500

    def __init__(self, store: EventStore | None, *, device: str = "", door: str = "",
                 listeners: Iterable[Callable[[Event], None]] = ()):
        self.store = store
        self.device = device
        self.door = door
        self.listeners: list[Callable[[Event], None]] = list(listeners)
        self.recorded: deque[Event] = deque(maxlen=self.RECORDED_LIMIT)  # this run's events, in order
        self.unstored: deque[Event] = deque(maxlen=self.UNSTORED_LIMIT)
        self.storage_fault: str | None = None

    def add_listener(self, listener: Callable[[Event], None]) -> None:
        self.listeners.append(listener)

    def record(self, event: str, ts: float, frame: int = -1, **fields) -> Event:
        if event not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {event!r}")
        ev = Event(event=event, ts=round(float(ts), 3), frame=frame, device=self.device, door=self.door, **fields)
        if self.store is None:
            self._announce(ev)
            return ev
        announced = self._store(ev)
        for e in announced:
            self._announce(e)
        return next(e for e in announced if e.uid == ev.uid)

    def _store(self, ev: Event) -> list[Event]:
        """Write ``ev`` (after any backlog); returns what to announce: ``ev`` with the storage fault or
        recovery it brought, in the order they are stored."""
        notices: list[Event] = []
        if self.storage_fault is not None:
            if not self._write_backlog():
                self.unstored.append(ev)
                return [ev]
            self.storage_fault = None
            log.warning("event storage works again: the events kept in memory are written")
            recovered = Event(event="recovered", ts=ev.ts, frame=-1, detail=f"{STORAGE_FAULT_PREFIX} writing again",
                              device=self.device, door=self.door)
            notices.append(self._append_or_keep(recovered))
        try:
            return [*notices, self.store.append(ev)]
        except EventStoreError as exc:
            self.unstored.append(ev)
            if self.storage_fault is not None:
                return [*notices, ev]
            self.storage_fault = f"{STORAGE_FAULT_PREFIX} {exc}"
            log.error("event storage fault: %s; events kept in memory until it can be written again", exc)
            fault = Event(event="fault", ts=ev.ts, frame=ev.frame, detail=self.storage_fault,
                          device=self.device, door=self.door)
            self.unstored.append(fault)
            return [*notices, ev, fault]

    def _append_or_keep(self, ev: Event) -> Event:
        try:
            return self.store.append(ev)
        except EventStoreError:
            self.unstored.append(ev)
            return ev

    def _write_backlog(self) -> bool:
        while self.unstored:
            try:
                self.store.append(self.unstored[0])
            except EventStoreError:
                return False
            self.unstored.popleft()
        return True

    def _announce(self, ev: Event) -> None:
        self.recorded.append(ev)
        for listener in self.listeners:
            try:
                listener(ev)
            except Exception:  # noqa: BLE001 - a broken listener must not break the gate
                log.exception("event listener %r failed on %s", listener, ev.event)
