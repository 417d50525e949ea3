"""docs/faults.md from the fault-matrix tests: each test in tests/test_faults_*.py whose docstring starts with
"Fault:" is one row (fault, how it is injected, what happens, the test).

    python tests/fault_matrix.py > docs/faults.md

tests/test_fault_matrix.py keeps the page equal to this output, like docs/config.md and `maskgate config reference`.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
#: the files in the order of the page (any other tests/test_faults_*.py follow)
ORDER = ("test_faults_process.py", "test_faults_storage.py", "test_faults_inputs.py", "test_faults_mqtt.py",
         "test_faults_soak.py")

HEADER = """# The fault matrix

Every failure below is injected for real by a test (real processes and signals, a real SQLite file, a tmpfs
filled to the last byte, a real mosquitto, the packaged models), and the test asserts what the door does.
This page is generated from the tests' docstrings (`python tests/fault_matrix.py > docs/faults.md`) and a
test keeps it equal to them.  Throughout, "the relay" is the lock relay's pin history under gpiozero's
MockFactory: de-energized means locked (`gpio.fail_mode = "secure"`).

| fault | how it is injected | what happens | test |
|---|---|---|---|
"""

FOOTER = """
## Durability of events

| kinds | written with | survives |
|---|---|---|
| <<DURABLE>> (security) | `synchronous=FULL`: the WAL is fsynced before the event is reported | a crash and a power cut |
| <<ROUTINE>> (routine) | `synchronous=NORMAL` | a crash; a power cut may lose the last ones (the next security event's fsync makes them durable too) |

`edge/events.py` (`DURABLE_KINDS`) holds the choice; `test_durability_follows_the_event_kind` checks it.
Retention: `events.max_events` (100000 by default; about 190 bytes an event in the soak, so under 20 MB)
keeps the newest events; the oldest are deleted as new ones come.

A full disk: an event that cannot be written is not reported as written (it has no `seq`). It reaches the
JSON lines and the listeners at once, and MQTT, e-mail and the webhook from memory (`edge/alerts/unstored.py`;
beyond 1000 waiting events a channel takes the oldest from the database later). The event log keeps it in
memory (10000 events at most; beyond, the oldest are lost) until a write finds space: then the kept events
are written in order, with their uids, followed by `recovered`, and each channel acknowledges them without
delivering them again (a channel's cursor that cannot be saved meanwhile is kept in memory). A gate stopped,
killed or cut from power before space returns loses the kept events from the database, though they went out
over the other channels. A database that a full disk keeps from being opened at start is opened at the first
write that finds space (`test_a_database_a_full_disk_keeps_closed_at_start_is_opened_when_space_returns`).

## The service's hardening

`systemd-analyze security --offline=yes deploy/files/maskgate.service`: 2.0 before issue 16, 1.5 now
(a device ACL for the camera, GPIO and Edge TPU nodes, `PrivateMounts=`, `UMask=0077`, no `@privileged` or
`@resources` system calls). The unit says in a comment why each remaining exposure stays
(`tests/test_faults_hardening.py` checks that, `tests/test_deploy_units.py` the score). Secrets: a secret
file every user can read is refused; MQTT credentials need `mqtts://` unless `mqtt.plaintext_credentials`;
remote unlock needs `mqtt.command_key_file` and a fresh signed command (edge/alerts/README.md).

## The soak

`maskgate soak --visits 600` replays 600 visits (300 masked visitors let in, 300 unmasked ones denied) through
the gate at full speed, with simulated pins and a real event database, sampling the process after each replay.
The test runs a shorter soak with the same code.  Measured on the development machine (2 shared cores):

"""


def rows() -> list[tuple[str, str, str, str]]:
    """(fault, injected, outcome, test name) of every fault test, file by file, in source order."""
    out = []
    paths = sorted(TESTS.glob("test_faults_*.py"), key=lambda p: (ORDER.index(p.name) if p.name in ORDER else 99, p.name))
    for path in paths:
        for node in ast.parse(path.read_text()).body:
            if not isinstance(node, ast.FunctionDef) or not node.name.startswith("test_"):
                continue
            doc = ast.get_docstring(node) or ""
            if not doc.startswith("Fault:"):
                continue
            parts = re.split(r"^(Fault|Injected|Outcome):\s*", doc, flags=re.M)
            fields = {parts[i]: " ".join(parts[i + 1].split()) for i in range(1, len(parts) - 1, 2)}
            out.append((fields["Fault"], fields["Injected"], fields["Outcome"], f"{path.name}::{node.name}"))
    return out


def markdown() -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [f"| {cell(f)} | {cell(i)} | {cell(o)} | `{t}` |" for f, i, o, t in rows()]
    from maskgate.edge.events import DURABLE_KINDS, EVENT_KINDS

    def names(kinds) -> str:
        return ", ".join(f"`{k}`" for k in EVENT_KINDS if k in kinds)

    footer = FOOTER.replace("<<DURABLE>>", names(DURABLE_KINDS)).replace("<<ROUTINE>>",
                                                                     names(set(EVENT_KINDS) - DURABLE_KINDS))
    return HEADER + "\n".join(lines) + "\n" + footer


if __name__ == "__main__":
    print(markdown(), end="")
