"""``maskgate image boot``: boot a card image on an emulated 64-bit Arm machine and say what happened.

The image is booted as a card would be, but on a throwaway copy (``--keep`` keeps it), under
``qemu-system-aarch64 -M virt`` with the copy as a virtio disk, the kernel and initramfs from the boot
partition (``kernel8.img`` / ``initramfs8``; ``--kernel`` / ``--initrd`` for others: a Raspberry Pi
kernel does not boot on ``virt``), the root from cmdline.txt, the serial console as the only console and
no network.  Into the copy goes one extra unit, ``maskgate-emulated-check.service``: it watches the gate
until it has replayed its source once (or time runs out), reports on the console what systemd says
(first boot, READY, the watchdog, restarts, sshd's effective settings) and powers the machine off.
After power-off the copy's disk is read: first boot disabled, events in the database, no password.

Nothing here needs root.  GPIO in the VM is whatever the card's config says (the kernel of ``virt``
has no Pi GPIO; use ``gpio.pin_factory = "mock"`` in the card's device.toml for a test card).
"""

from __future__ import annotations

import logging
import re
import sqlite3
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from maskgate.deploy import imagefile, layout, partitions, tools
from maskgate.deploy.ext4 import Batch, Ext4
from maskgate.deploy.fat import Fat
from maskgate.errors import DeployError

log = logging.getLogger(__name__)

QEMU = "qemu-system-aarch64"
tools.PACKAGES.setdefault(QEMU, "qemu-system-arm")
CHECK_UNIT = "maskgate-emulated-check.service"
CHECK_SCRIPT = "/usr/local/sbin/maskgate-emulated-check"
MARK = "maskgate-boot:"

#: seconds systemd waits for devices and for the gate's READY in the emulated boot
EMULATED_START_SEC = 900
EMULATED_DROPIN = f"""\
# Added by `maskgate image boot` to its throwaway copy: emulation is slow to load the models.
[Service]
TimeoutStartSec={EMULATED_START_SEC}
"""

CHECK_UNIT_TEXT = f"""\
# Added by `maskgate image boot` to its throwaway copy of the image: report, then power off.
[Unit]
Description=maskgate emulated boot: watch the gate, report on the console, power off
After=local-fs.target

[Service]
Type=simple
ExecStart={CHECK_SCRIPT} @WAIT@
StandardOutput=tty
StandardError=tty
TTYPath=/dev/console

[Install]
WantedBy=multi-user.target
"""

CHECK_SCRIPT_TEXT = r"""#!/bin/sh
# Added by `maskgate image boot`: wait until the gate has replayed its source once, report, power off.
# $1: the machine's uptime (seconds since the kernel started) by which to give up and report anyway.
until_s=$1
say() { echo "maskgate-boot: $*"; }
prop() { systemctl show -P "$1" maskgate.service; }
say "watching maskgate.service until ${until_s} s after power-on"
seen_active=no fed=no
while :; do
    now=$(cut -d. -f1 /proc/uptime)
    if [ "$(prop ActiveState)" = active ] && [ "$(prop SubState)" = running ]; then
        seen_active=yes
        entered=$(prop ActiveEnterTimestampMonotonic)
        pinged=$(prop WatchdogTimestampMonotonic)
        if [ "${pinged:-0}" -gt "${entered:-0}" ] 2>/dev/null; then fed=yes; fi
    fi
    if journalctl -b -q -u maskgate.service -o cat 2>/dev/null | grep -q 'STOPPED'; then
        say "the gate replayed its source once"
        break
    fi
    if [ "$now" -ge "$until_s" ]; then
        say "gave up waiting at ${now} s after power-on"
        break
    fi
    sleep 1
done
say "firstboot_result=$(systemctl show -P Result maskgate-firstboot.service)"
say "firstboot_enabled=$(systemctl is-enabled maskgate-firstboot.service 2>/dev/null)"
say "gate_ready=$seen_active"
say "watchdog_fed=$fed"
say "watchdog_usec=$(prop WatchdogUSec)"
say "gate_restarts=$(prop NRestarts)"
say "gate_user=$(prop User)"
mkdir -p /run/sshd
for k in passwordauthentication kbdinteractiveauthentication pubkeyauthentication permitrootlogin; do
    say "sshd_$k=$(sshd -T 2>/dev/null | awk -v k=$k '$1 == k {print $2}')"
done
journalctl -b -q -u maskgate.service -o cat --no-pager 2>/dev/null | tail -n 40 | sed 's/^/maskgate-boot: gate| /'
say "powering off"
systemctl poweroff
"""


@dataclass
class BootOptions:
    image: Path
    timeout: float = 1800.0  # the whole boot, seconds
    kernel: Path | None = None
    initrd: Path | None = None
    keep: Path | None = None  # keep the booted copy here
    memory_mib: int = 2048
    cpus: int = 2
    echo: bool = False  # print the serial console as it comes


@dataclass
class BootReport:
    console: str = ""
    report: dict[str, str] = field(default_factory=dict)  # the check unit's key=value lines
    firstboot_runs: int = 0
    firstboot_still_enabled: bool | None = None
    events: list[dict] = field(default_factory=list)
    passwords: list[str] = field(default_factory=list)  # accounts with a usable password
    powered_off: bool = False
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        r = self.report
        lines = [
            f"booted for {self.seconds:.0f} s; {'powered off' if self.powered_off else 'did NOT power off'}",
            f"first boot: ran {self.firstboot_runs}x, result {r.get('firstboot_result', '?')}, "
            f"{'still enabled' if self.firstboot_still_enabled else 'disabled'}",
            f"gate: READY {r.get('gate_ready', '?')}, watchdog fed {r.get('watchdog_fed', '?')} "
            f"(WatchdogSec {_seconds(r.get('watchdog_usec'))}), restarts {r.get('gate_restarts', '?')}, "
            f"user {r.get('gate_user', '?')}",
            f"events in the database: {len(self.events)} ({', '.join(sorted({e['event'] for e in self.events})) or 'none'})",
            f"sshd: password {r.get('sshd_passwordauthentication', '?')}, keyboard-interactive "
            f"{r.get('sshd_kbdinteractiveauthentication', '?')}, root login {r.get('sshd_permitrootlogin', '?')}; "
            f"accounts with a password: {', '.join(self.passwords) or 'none'}",
        ]
        verdict = "PASS" if self.ok else "FAIL: " + "; ".join(self.problems)
        return "\n".join(lines + [verdict])


def _seconds(usec: str | None) -> str:
    """systemd's microseconds as seconds; its own words ("infinity": a unit that never started) as they are."""
    if not usec:
        return "?"
    return f"{int(usec) / 1e6:.0f} s" if usec.isdigit() else usec


def boot(opts: BootOptions) -> BootReport:
    """Boot a copy of the image, watch it, read its disk afterwards; the report says what went wrong."""
    tools.require(QEMU, "mcopy", "debugfs", "sfdisk")
    image = Path(opts.image)
    if not image.is_file():
        raise DeployError(f"image not found: {image}")
    with tempfile.TemporaryDirectory(prefix="maskgate-boot-") as tmp:
        tmp = Path(tmp)
        disk = Path(opts.keep) if opts.keep else tmp / "disk.img"
        log.info("copying %s to %s", image, disk)
        imagefile.copy_base(image, disk, progress_label=f"copying {image.name}")
        table = partitions.read(disk)
        kernel, initrd, cmdline = _boot_files(disk, table, opts, tmp)
        give_up = max(60, int(opts.timeout) - 120)  # uptime; leaves time to report and power off
        _add_check_unit(disk, table, give_up)
        report = BootReport()
        t0 = time.monotonic()
        report.console, report.powered_off = _run_qemu(disk, kernel, initrd, cmdline, opts)
        report.seconds = time.monotonic() - t0
        _read_console(report)
        _read_disk(report, disk, table, tmp)
        _judge(report)
    return report


def _boot_files(disk: Path, table, opts: BootOptions, tmp: Path) -> tuple[Path, Path, str]:
    fat = Fat(disk, table.boot.offset)
    paths = []
    for given, name in ((opts.kernel, "kernel8.img"), (opts.initrd, "initramfs8")):
        if given:
            paths.append(Path(given))
            continue
        if not fat.exists(f"/{name}"):
            raise DeployError(f"{opts.image}: the boot partition has no {name}; pass --kernel and --initrd "
                              "(a Debian arm64 kernel and its initramfs)")
        (tmp / name).write_bytes(fat.read(f"/{name}"))
        paths.append(tmp / name)
    text = fat.read("/cmdline.txt").decode("utf-8", "replace") if fat.exists("/cmdline.txt") else ""
    args = [a for a in text.split() if not a.startswith(("console=", "quiet", "splash", "plymouth."))]
    if not any(a.startswith("root=") for a in args):
        raise DeployError(f"{opts.image}: cmdline.txt on the boot partition names no root=")
    # The serial port of `virt` is the only console; the check unit's report goes there.  Emulation is
    # tens of times slower than a Pi: systemd's 90 s for devices and for starting a unit (journald,
    # modules-load on a busy machine) are not enough.
    return paths[0], paths[1], " ".join(args + ["console=ttyAMA0,115200", "systemd.show_status=1",
                                                f"systemd.default_device_timeout_sec={EMULATED_START_SEC}",
                                                f"systemd.default_timeout_start_sec={EMULATED_START_SEC}"])


def _add_check_unit(disk: Path, table, wait: int) -> None:
    root = Ext4(disk, table.root.offset)
    with Batch() as b:
        # only the start-up allowance of the gate is widened (loading the models emulated takes minutes);
        # its WatchdogSec= stays as built
        b.mkdir(f"{layout.UNIT_DIR}/maskgate.service.d", 0o755)
        b.write_bytes(f"{layout.UNIT_DIR}/maskgate.service.d/50-emulated.conf", EMULATED_DROPIN.encode(), 0o644)
        b.mkdir("/usr/local/sbin", 0o755)
        b.write_bytes(CHECK_SCRIPT, CHECK_SCRIPT_TEXT.encode(), 0o755)
        b.write_bytes(f"{layout.UNIT_DIR}/{CHECK_UNIT}", CHECK_UNIT_TEXT.replace("@WAIT@", str(wait)).encode(), 0o644)
        b.symlink(f"{layout.WANTS}/{CHECK_UNIT}", f"{layout.UNIT_DIR}/{CHECK_UNIT}")
        root.apply(b)


def qemu_command(disk: Path, kernel: Path, initrd: Path, cmdline: str, memory_mib: int = 2048, cpus: int = 2) -> list[str]:
    return [
        tools.which(QEMU) or QEMU, "-M", "virt", "-cpu", "cortex-a72", "-smp", str(cpus), "-m", str(memory_mib),
        "-display", "none", "-monitor", "none", "-serial", "stdio", "-nic", "none", "-no-reboot",
        "-kernel", str(kernel), "-initrd", str(initrd), "-append", cmdline,
        "-drive", f"file={disk},format=raw,if=virtio,cache=unsafe", "-device", "virtio-rng-pci",
    ]


def _run_qemu(disk: Path, kernel: Path, initrd: Path, cmdline: str, opts: BootOptions) -> tuple[str, bool]:
    """The serial console's text, and whether the machine powered itself off before the timeout."""
    cmd = qemu_command(disk, kernel, initrd, cmdline, opts.memory_mib, opts.cpus)
    log.info("booting: %s", " ".join(cmd))
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    chunks: list[str] = []
    hopeless = threading.Event()  # a boot that cannot get anywhere: do not wait for the timeout

    def pump():
        for raw in iter(proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace")
            chunks.append(line)
            if any(m in line for m in HOPELESS):
                hopeless.set()
            if opts.echo:
                print(line, end="", flush=True)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    deadline = time.monotonic() + opts.timeout
    off = False
    while True:
        try:
            proc.wait(timeout=1)
            off = True
            break
        except subprocess.TimeoutExpired:
            if hopeless.is_set() or time.monotonic() > deadline:
                time.sleep(5 if hopeless.is_set() else 0)  # the last lines of the console
                proc.kill()
                proc.wait()
                break
    reader.join(timeout=10)
    if off and proc.returncode != 0:
        chunks.append(f"\n{QEMU} exited {proc.returncode}\n")
        off = False
    return "".join(chunks), off


#: console lines after which the boot cannot reach the gate
HOPELESS = ("Kernel panic", "Reached target emergency.target", "Give root password for maintenance",
            "Cannot open access to console, the root account is locked")

_REPORT = re.compile(rf"^{re.escape(MARK)} (\w+)=(.*)$")


def _read_console(report: BootReport) -> None:
    text = report.console.replace("\r", "")
    for line in text.splitlines():
        m = _REPORT.match(line.strip())
        if m:
            report.report[m.group(1)] = m.group(2).strip()
    report.firstboot_runs = len(re.findall(r"maskgate-firstboot: done", text))


def _read_disk(report: BootReport, disk: Path, table, tmp: Path) -> None:
    root = Ext4(disk, table.root.offset)
    report.firstboot_still_enabled = root.stat(f"{layout.WANTS}/maskgate-firstboot.service") is not None
    for line in root.read("/etc/shadow").decode("utf-8", "replace").splitlines():
        parts = line.split(":")
        if len(parts) > 1 and (parts[1] == "" or parts[1][:1] not in "!*"):
            report.passwords.append(parts[0])
    db = f"{layout.STATE}/events.db"
    if root.stat(db) is None:
        return
    local = tmp / "events.db"
    local.write_bytes(root.read(db))
    for suffix in ("-wal", "-shm"):  # a gate stopped by the power-off may leave its log behind
        if root.stat(db + suffix) is not None:
            Path(f"{local}{suffix}").write_bytes(root.read(db + suffix))
    conn = sqlite3.connect(local)
    try:
        conn.row_factory = sqlite3.Row
        report.events = [dict(r) for r in conn.execute("SELECT event, frame, decision, p_mask, detail FROM events ORDER BY id")]
    finally:
        conn.close()


def _judge(report: BootReport) -> None:
    r, p = report.report, report.problems
    if not report.powered_off:
        p.append("the machine did not power off in time (see the console)")
    if "Kernel panic" in report.console:
        p.append("kernel panic")
    if any(m in report.console for m in HOPELESS[1:]):
        p.append("systemd went into emergency mode (see the console)")
    if report.firstboot_runs != 1:
        p.append(f"first boot finished {report.firstboot_runs} times, not once")
    if report.firstboot_still_enabled:
        p.append("maskgate-firstboot.service is still enabled")
    if r.get("gate_ready") != "yes":
        p.append("the gate never reached READY (active/running)")
    if r.get("watchdog_fed") != "yes":
        p.append("the gate did not feed its watchdog")
    if not any(e["event"] not in ("started", "stopped") for e in report.events):
        p.append("no gate decisions in the event database")
    if report.passwords:
        p.append(f"accounts with a password: {', '.join(report.passwords)}")
    if r.get("sshd_passwordauthentication") != "no" or r.get("sshd_kbdinteractiveauthentication") != "no":
        p.append("sshd accepts passwords")
    if not r:
        p.append("the check unit reported nothing")


__all__ = ["BootOptions", "BootReport", "boot", "qemu_command"]
