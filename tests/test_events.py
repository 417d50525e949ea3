"""The event store (a real SQLite file in WAL mode), its outbox cursors, and JSON lines."""

import json
import sqlite3
import threading

from maskgate.edge.events import Event, EventLog, EventStore, JsonLinesWriter


def test_events_are_stored_in_order_with_unique_ids(tmp_path):
    store = EventStore(tmp_path / "events.db")
    log = EventLog(store, device="door-1", door="front")
    a = log.record("started", 0.0)
    b = log.record("unlocked", 1.5, 15, decision="unlock", p_mask=0.97, faces=1, infer_ms=12.3)
    assert (a.seq, b.seq) == (1, 2) and a.uid != b.uid
    again = EventStore(tmp_path / "events.db").all()
    assert [(e.event, e.frame, e.p_mask, e.door) for e in again] == [("started", -1, None, "front"), ("unlocked", 15, 0.97, "front")]
    mode = sqlite3.connect(tmp_path / "events.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_cursors_give_each_channel_what_it_has_not_delivered(tmp_path):
    store = EventStore(tmp_path / "e.db")
    for i in range(5):
        store.append(Event("denied", float(i), i))
    assert [e.frame for e in store.pending("mqtt")] == [0, 1, 2, 3, 4]
    store.ack("mqtt", 3)
    assert [e.frame for e in store.pending("mqtt")] == [3, 4]
    store.ack("mqtt", 2)  # never moves backwards
    assert store.cursor("mqtt") == 3
    assert len(store.pending("email")) == 5


def test_a_new_channel_starts_at_the_end_of_the_history(tmp_path):
    store = EventStore(tmp_path / "e.db")
    for i in range(3):
        store.append(Event("denied", float(i), i))
    assert store.start_channel("webhook") == 3
    store.append(Event("denied", 9.0, 9))
    assert [e.frame for e in store.pending("webhook")] == [9]
    assert store.start_channel("webhook") == 3  # an existing cursor is kept


def test_threads_use_their_own_connections(tmp_path):
    store = EventStore(tmp_path / "e.db")
    errors = []

    def writer(k):
        try:
            for i in range(20):
                store.append(Event("denied", float(i), k * 100 + i))
        except Exception as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(store.all()) == 60


def test_json_lines_have_event_frame_and_ts(tmp_path):
    path = tmp_path / "events.jsonl"
    writer = JsonLinesWriter(path)
    log = EventLog(None, listeners=[writer])
    log.record("denied", 2.0, 20, decision="deny", p_mask=0.1)
    writer.close()
    obj = json.loads(path.read_text().splitlines()[0])
    assert obj["event"] == "denied" and obj["frame"] == 20 and obj["ts"] == 2.0 and obj["v"] == 1


def test_a_failing_listener_does_not_stop_recording(tmp_path):
    store = EventStore(tmp_path / "e.db")
    log = EventLog(store, listeners=[lambda e: 1 / 0])
    log.record("fault", 1.0, detail="camera stalled")
    assert len(store.all()) == 1
