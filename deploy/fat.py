"""The FAT boot partition, edited in place inside an image file or on a card with mtools.

``Fat(path, offset)`` addresses the file system that starts ``offset`` bytes into ``path`` (mtools'
``path@@offset`` syntax), so nothing is mounted and no loop device is needed.  Paths are absolute
inside the partition ("/maskgate/device.toml").  :func:`used_ranges` reads the FAT itself to tell
which byte ranges hold data, for the bmap.
"""

from __future__ import annotations

import struct
import tempfile
from pathlib import Path

from maskgate.deploy import tools
from maskgate.errors import DeployError


class Fat:
    def __init__(self, path: str | Path, offset: int = 0, *, label: str = "boot partition"):
        self.path = str(path)
        self.offset = offset
        self.label = label
        self._spec = f"{self.path}@@{offset}" if offset else self.path

    def _run(self, tool: str, *args: str, what: str, ok_codes=(0,)):
        return tools.run([tool, "-i", self._spec, *args], what=f"{what} ({self.label} of {self.path})", ok_codes=ok_codes)

    @staticmethod
    def _m(path: str) -> str:
        if not path.startswith("/"):
            raise ValueError(f"FAT paths are absolute: {path!r}")
        return "::" + path

    def listdir(self, path: str = "/") -> list[str]:
        """Names in a folder (folders end with '/'); an error if the folder does not exist."""
        proc = self._run("mdir", "-b", self._m(path.rstrip("/") + "/"), what=f"listing {path}")
        prefix = self._m(path.rstrip("/") + "/")
        names = []
        for line in proc.stdout.decode("utf-8", "replace").splitlines():
            line = line.strip()
            if line.startswith(prefix) and line != prefix:
                names.append(line[len(prefix):])
        return sorted(names)

    def exists(self, path: str) -> bool:
        proc = self._run("mdir", "-b", self._m(path), what=f"looking for {path}", ok_codes=(0, 1))
        return proc.returncode == 0

    def read(self, path: str) -> bytes:
        proc = self._run("mcopy", "-n", self._m(path), "-", what=f"reading {path}", ok_codes=(0, 1))
        if proc.returncode != 0:
            raise DeployError(f"{self.label} of {self.path}: no file {path}")
        return proc.stdout

    def mkdir(self, path: str) -> None:
        """Create a folder and its parents; existing ones are fine."""
        parts = [p for p in path.split("/") if p]
        for i in range(1, len(parts) + 1):
            sub = "/" + "/".join(parts[:i])
            if not self.exists(sub):
                self._run("mmd", self._m(sub), what=f"creating folder {sub}")

    def write(self, path: str, data: bytes) -> None:
        """Create or replace a file (its folder is created as needed)."""
        parent = path.rsplit("/", 1)[0]
        if parent:
            self.mkdir(parent)
        with tempfile.NamedTemporaryFile(prefix="maskgate-fat-") as tmp:
            tmp.write(data)
            tmp.flush()
            self._run("mcopy", "-o", "-n", tmp.name, self._m(path), what=f"writing {path}")

    def remove(self, path: str) -> bool:
        """Delete a file or a folder tree; False if there was nothing to delete."""
        if not self.exists(path):
            return False
        proc = self._run("mdeltree", self._m(path), what=f"deleting {path}", ok_codes=(0, 1))
        if proc.returncode != 0:
            self._run("mdel", self._m(path), what=f"deleting {path}")
        return True

    def tree(self, path: str = "/") -> dict[str, bytes]:
        """Every file below ``path`` with its contents (for manifests and tests)."""
        out: dict[str, bytes] = {}
        for name in self.listdir(path):
            full = path.rstrip("/") + "/" + name.rstrip("/")
            if name.endswith("/"):
                out.update(self.tree(full))
            else:
                out[full] = self.read(full)
        return out


# ---------------------------------------------------------------------------------------------- #
# Which parts of a FAT partition hold data (for the bmap)


def used_ranges(image: str | Path, offset: int, length: int) -> list[tuple[int, int]]:
    """Byte ranges ``(start, end)`` (absolute in ``image``) that the FAT file system uses.

    The reserved sectors, the FATs and (FAT12/16) the root folder always count; of the data area only
    allocated clusters do.  A FAT12 volume is reported whole (its 12-bit table is not worth parsing).
    """
    with open(image, "rb") as f:
        f.seek(offset)
        bs = f.read(512)
        if len(bs) < 512 or bs[510:512] != b"\x55\xaa":
            raise DeployError(f"{image}: no FAT boot sector at byte {offset}")
        bytes_per_sector, sectors_per_cluster, reserved, num_fats, root_entries, total16, _, fat16 = struct.unpack_from(
            "<HBHBHHBH", bs, 11
        )
        total32, fat32 = struct.unpack_from("<II", bs, 32)
        if not bytes_per_sector or not sectors_per_cluster or not num_fats:
            raise DeployError(f"{image}: the FAT boot sector at byte {offset} is not valid")
        fat_sectors = fat16 or fat32
        total = total16 or total32
        root_sectors = (root_entries * 32 + bytes_per_sector - 1) // bytes_per_sector
        data_start = reserved + num_fats * fat_sectors + root_sectors
        clusters = (total - data_start) // sectors_per_cluster
        fs_end = offset + min(total * bytes_per_sector, length)
        meta = (offset, offset + data_start * bytes_per_sector)
        if clusters < 4085:  # FAT12
            return [(offset, fs_end)]
        width = 2 if clusters < 65525 else 4
        f.seek(offset + reserved * bytes_per_sector)
        table = f.read((clusters + 2) * width)
    if width == 2:
        entries = struct.unpack_from(f"<{clusters + 2}H", table)
    else:
        entries = [e & 0x0FFFFFFF for e in struct.unpack_from(f"<{clusters + 2}I", table)]
    cluster_bytes = sectors_per_cluster * bytes_per_sector
    ranges = [meta]
    run_start = None
    for n in range(2, clusters + 2):
        used = entries[n] != 0  # 0 marks a free cluster
        if used and run_start is None:
            run_start = n
        elif not used and run_start is not None:
            ranges.append(_cluster_span(meta[1], cluster_bytes, run_start, n))
            run_start = None
    if run_start is not None:
        ranges.append(_cluster_span(meta[1], cluster_bytes, run_start, clusters + 2))
    return [(a, min(b, fs_end)) for a, b in ranges if a < fs_end]


def _cluster_span(data_offset: int, cluster_bytes: int, first: int, stop: int) -> tuple[int, int]:
    return data_offset + (first - 2) * cluster_bytes, data_offset + (stop - 2) * cluster_bytes


__all__ = ["Fat", "used_ranges"]
