"""Is it safe to overwrite this target?  Refuse mounted devices, the system disk and too-small cards.

A target is a regular file (created or extended as needed; what the tests flash) or a whole block
device.  For a block device everything is read from sysfs and /proc: its partitions and the disks
under every mounted file system and swap area (through device-mapper and md ``slaves/``), holders
(LVM, LUKS, md), read-only flag, size, and a removable/USB hint for the confirmation prompt.  The
paths of /sys and /proc are parameters so that the rules can be tested on a recorded tree.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from maskgate.errors import UnsafeTarget


@dataclass(frozen=True)
class Target:
    path: str
    kind: str  # "file" | "block"
    size: int  # bytes now (0 for a file that does not exist yet)
    exists: bool
    description: str  # "SanDisk SD card reader, 31.9 GB" / "regular file"


@dataclass(frozen=True)
class System:
    """Where the kernel's view of disks and mounts is read from."""

    sys: Path = Path("/sys")
    mountinfo: Path = Path("/proc/self/mountinfo")
    swaps: Path = Path("/proc/swaps")


def check_target(path: str | Path, image_size: int, *, image: str | Path | None = None, system: System = System()) -> Target:
    """The target if writing ``image_size`` bytes to it is allowed, else :class:`UnsafeTarget` saying why."""
    path = str(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        parent = Path(path).parent
        if Path(os.path.abspath(path)).parts[1:2] == ("dev",):
            raise UnsafeTarget(f"{path}: no such device (is the card reader plugged in?)") from None
        if not parent.is_dir():
            raise UnsafeTarget(f"{path}: no such device, and {parent} is not a folder to create a file in") from None
        return Target(path, "file", 0, False, "new file")
    if stat.S_ISREG(st.st_mode):
        if image is not None and os.path.exists(image) and os.path.samefile(path, image):
            raise UnsafeTarget(f"{path} is the image itself")
        loops = _loop_devices_backed_by(path, system)
        if loops:
            raise UnsafeTarget(f"{path} is in use as {', '.join('/dev/' + n for n in loops)}")
        return Target(path, "file", st.st_size, True, "regular file")
    if not stat.S_ISBLK(st.st_mode):
        raise UnsafeTarget(f"{path} is neither a block device nor a regular file")
    name = block_name(os.major(st.st_rdev), os.minor(st.st_rdev), system)
    return check_block(path, name, image_size, system)


def block_name(major: int, minor: int, system: System = System()) -> str:
    """The kernel's name (sdb, mmcblk0) of the block device major:minor."""
    link = system.sys / "dev" / "block" / f"{major}:{minor}"
    if not link.exists():
        raise UnsafeTarget(f"block device {major}:{minor} is not in {system.sys}/dev/block")
    return Path(os.path.realpath(link)).name


def check_block(path: str, name: str, image_size: int, system: System = System()) -> Target:
    """The rules for a block device known to the kernel as ``name`` (sdb, mmcblk0, loop3...)."""
    dev = _sysdir(name, system)
    if (dev / "partition").exists():
        parent = Path(os.path.realpath(dev)).parent.name
        raise UnsafeTarget(f"{path} is a partition of /dev/{parent}; give the whole card (/dev/{parent})")
    in_use = disks_in_use(system)
    if name in in_use:
        what = in_use[name]
        if any(mnt == "/" for _, mnt in what):
            raise UnsafeTarget(f"{path} is the system disk (it holds the root file system /)")
        src, mnt = what[0]
        where = f"swap on {src}" if mnt == "[swap]" else f"{src} is mounted on {mnt}"
        raise UnsafeTarget(f"{path} is in use: {where}; unmount it first")
    holders = _holders(name, dev)
    if holders:
        raise UnsafeTarget(f"{path} is in use by {', '.join(holders)} (LVM, LUKS or RAID)")
    if _read(dev / "ro") == "1":
        raise UnsafeTarget(f"{path} is read-only (the SD card's lock switch?)")
    sectors = _read(dev / "size")
    size = int(sectors) * 512 if sectors and sectors.isdigit() else 0
    if size == 0:
        raise UnsafeTarget(f"{path} has no medium (no card in the reader?)")
    if size < image_size:
        raise UnsafeTarget(f"{path} is smaller than the image ({_gb(size)} < {_gb(image_size)})")
    return Target(path, "block", size, True, describe(name, size, system))


def describe(name: str, size: int, system: System = System()) -> str:
    dev = _sysdir(name, system)
    words = [w for w in (_read(dev / "device" / "vendor"), _read(dev / "device" / "model")) if w]
    kind = "removable" if _read(dev / "removable") == "1" else "fixed"
    return f"{' '.join(words) or name} ({kind}, {_gb(size)})"


def disks_in_use(system: System = System()) -> dict[str, list[tuple[str, str]]]:
    """Whole-disk name -> [(source, mount point)] for every mounted file system and swap area on it."""
    used: dict[str, list[tuple[str, str]]] = {}
    try:
        lines = system.mountinfo.read_text().splitlines()
    except OSError as exc:
        raise UnsafeTarget(f"cannot read {system.mountinfo} to check for mounted devices: {exc.strerror}") from None
    for line in lines:
        fields = line.split()
        if len(fields) < 10 or "-" not in fields:
            continue
        majmin, mnt = fields[2], _unescape(fields[4])
        source = _unescape(fields[fields.index("-") + 2])
        major, _, minor = majmin.partition(":")
        if major == "0":  # tmpfs, proc, overlay, ...: no block device
            continue
        for disk in _disks_under(f"{major}:{minor}", system):
            used.setdefault(disk, []).append((source, mnt))
    try:
        swaps = system.swaps.read_text().splitlines()[1:]
    except OSError:
        swaps = []
    for line in swaps:
        fields = line.split()
        if fields and fields[0].startswith("/dev/"):
            try:
                st = os.stat(fields[0])
            except OSError:
                continue
            for disk in _disks_under(f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}", system):
                used.setdefault(disk, []).append((fields[0], "[swap]"))
    return used


def _disks_under(majmin: str, system: System, depth: int = 0) -> set[str]:
    """The whole disks a block device lives on (a partition's disk; the slaves of dm/md devices)."""
    link = system.sys / "dev" / "block" / majmin
    if not link.exists() or depth > 8:
        return set()
    real = Path(os.path.realpath(link))
    return _disks_of_dir(real, system, depth)


def _disks_of_dir(real: Path, system: System, depth: int) -> set[str]:
    if (real / "partition").exists():
        return {real.parent.name}
    slaves = real / "slaves"
    found = set()
    if slaves.is_dir():
        for s in slaves.iterdir():
            found |= _disks_of_dir(Path(os.path.realpath(s)), system, depth + 1)
    return found or {real.name}


def _holders(name: str, dev: Path) -> list[str]:
    """Devices stacked on the disk or its partitions (dm-0 for LVM/LUKS, md0 for RAID)."""
    if not dev.is_dir():
        return []
    parts = [p for p in dev.iterdir() if (p / "partition").exists()]
    out = []
    for d in [dev, *parts]:
        holders = d / "holders"
        if holders.is_dir():
            out += sorted(h.name for h in holders.iterdir())
    return out


def _loop_devices_backed_by(path: str, system: System) -> list[str]:
    real = os.path.realpath(path)
    block = system.sys / "block"
    found = []
    if block.is_dir():
        for dev in sorted(block.glob("loop*")):
            backing = _read(dev / "loop" / "backing_file")
            if backing and os.path.realpath(backing) == real:
                found.append(dev.name)
    return found


def _sysdir(name: str, system: System) -> Path:
    d = system.sys / "class" / "block" / name
    if not d.exists():
        raise UnsafeTarget(f"/dev/{name} is not a block device the kernel knows")
    return d


def _read(p: Path) -> str:
    try:
        return p.read_text().strip()
    except OSError:
        return ""


def _unescape(s: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (\\040)."""
    return s.encode().decode("unicode_escape") if "\\" in s else s


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 2**20:.1f} MiB"


__all__ = ["Target", "System", "check_target", "check_block", "block_name", "disks_in_use", "describe"]
