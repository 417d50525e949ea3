"""The partition table of an SD image or card: read with ``sfdisk --json``, grow the last partition.

Raspberry Pi OS images have an MBR (``dos``) label with a FAT boot partition (``bootfs``, type ``c``)
followed by the ext4 root (``rootfs``, type ``83``) as the last partition.  Nothing here mounts
anything; offsets are handed to mtools and e2fsprogs, which work on the image file directly.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from maskgate.deploy import tools
from maskgate.errors import DeployError

#: MBR partition type codes of FAT file systems (FAT12/16/32, with and without LBA)
FAT_TYPES = {"1", "4", "6", "b", "c", "e"}
LINUX_TYPES = {"83"}


@dataclass(frozen=True)
class Partition:
    number: int
    start: int  # in sectors
    size: int  # in sectors
    type: str  # MBR type code, lower case hex without 0x ("c", "83")
    sector_size: int = 512

    @property
    def offset(self) -> int:
        """Byte offset of the partition in the image."""
        return self.start * self.sector_size

    @property
    def nbytes(self) -> int:
        return self.size * self.sector_size

    @property
    def end(self) -> int:
        """Byte offset just past the partition."""
        return self.offset + self.nbytes


@dataclass(frozen=True)
class PartitionTable:
    path: str
    label: str
    disk_id: str
    partitions: tuple[Partition, ...]
    sector_size: int = 512

    @property
    def boot(self) -> Partition:
        """The first FAT partition (the Raspberry Pi firmware reads config.txt from it)."""
        for p in self.partitions:
            if p.type in FAT_TYPES:
                return p
        raise DeployError(f"{self.path}: no FAT boot partition in the partition table")

    @property
    def root(self) -> Partition:
        """The first Linux partition after the boot partition."""
        boot = self.boot
        for p in self.partitions:
            if p.type in LINUX_TYPES and p.start > boot.start:
                return p
        raise DeployError(f"{self.path}: no Linux root partition after the boot partition")

    @property
    def last(self) -> Partition:
        return max(self.partitions, key=lambda p: p.start)

    def describe(self) -> list[dict]:
        return [
            {"number": p.number, "start": p.start, "sectors": p.size, "type": p.type} for p in self.partitions
        ]


def read(path: str | Path) -> PartitionTable:
    """Read and sanity-check the partition table of an image file or a block device."""
    path = str(path)
    proc = tools.run(["sfdisk", "--json", path], what=f"reading the partition table of {path}")
    try:
        table = json.loads(proc.stdout.decode())["partitiontable"]
    except (ValueError, KeyError):
        raise DeployError(f"{path}: sfdisk printed no partition table (not a disk image?)") from None
    label = table.get("label", "")
    if label != "dos":
        raise DeployError(
            f"{path}: partition table is {label or 'unknown'!r}, expected an MBR ('dos') table like Raspberry Pi OS images"
        )
    sector_size = int(table.get("sectorsize", 512))
    parts = []
    for entry in table.get("partitions", []):
        node = entry["node"]
        m = re.search(r"(\d+)$", node)
        number = int(m.group(1)) if m else len(parts) + 1
        ptype = str(entry["type"]).lower().removeprefix("0x")
        parts.append(Partition(number, int(entry["start"]), int(entry["size"]), ptype, sector_size))
    if not parts:
        raise DeployError(f"{path}: the partition table is empty")
    return PartitionTable(path, label, str(table.get("id", "")), tuple(parts), sector_size)


def grow_last(path: str | Path, table: PartitionTable, new_sectors: int) -> PartitionTable:
    """Grow the last partition to ``new_sectors`` (the image file must already be large enough)."""
    last = table.last
    if new_sectors <= last.size:
        return table
    script = f"{last.start},{new_sectors}\n".encode()
    tools.run(
        ["sfdisk", "--no-reread", "--no-tell-kernel", "-q", "-N", str(last.number), str(path)],
        input=script, what=f"growing partition {last.number} of {path}",
    )
    new = read(path)
    if new.disk_id != table.disk_id or new.last.start != last.start or new.last.size != new_sectors:
        raise DeployError(f"{path}: sfdisk did not grow partition {last.number} as asked")
    return new


__all__ = ["Partition", "PartitionTable", "read", "grow_last", "FAT_TYPES", "LINUX_TYPES"]
