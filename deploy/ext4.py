"""The ext4 root file system, read and edited inside an image file with e2fsprogs (debugfs).

``Ext4(path, offset)`` addresses the file system ``offset`` bytes into ``path`` (e2fsprogs'
``path?offset=N`` I/O option): no mount, no loop device, no root needed.  Changes are collected in
a :class:`Batch` (folders, files with owner and mode, symlinks) and applied in one debugfs run.
debugfs reports failures only on stderr, never in its exit status, so any line there other than its
version banner is an error.
"""

from __future__ import annotations

import re
import stat as st
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from maskgate.deploy import tools
from maskgate.errors import DeployError

_SAFE_PATH = re.compile(r"/[A-Za-z0-9._+@:=,~/-]*")


@dataclass(frozen=True)
class Inode:
    path: str
    kind: str  # "file" | "dir" | "symlink" | "other"
    mode: int  # permission bits only (0o7777)
    uid: int
    gid: int
    size: int
    target: str | None = None  # symlink destination (fast links only)


def _kind(mode: int) -> str:
    if st.S_ISREG(mode):
        return "file"
    if st.S_ISDIR(mode):
        return "dir"
    if st.S_ISLNK(mode):
        return "symlink"
    return "other"


class Ext4:
    def __init__(self, path: str | Path, offset: int = 0, *, label: str = "root file system"):
        self.path = str(path)
        self.offset = offset
        self.label = label
        self.spec = f"{self.path}?offset={offset}" if offset else self.path

    # -- running debugfs -------------------------------------------------------------------- #

    def debugfs(self, commands: list[str], *, write: bool = False, what: str = "") -> str:
        """Run debugfs commands in one session; return stdout; raise on any complaint on stderr."""
        what = what or f"editing the {self.label} of {self.path}"
        with tempfile.NamedTemporaryFile("w", prefix="maskgate-debugfs-", suffix=".cmds") as script:
            script.write("\n".join(commands) + "\n")
            script.flush()
            args = ["debugfs", *(["-w"] if write else []), "-f", script.name, self.spec]
            proc = tools.run(args, what=what)
        errors = [
            ln for ln in proc.stderr.decode("utf-8", "replace").splitlines()
            if ln.strip() and not tools._is_banner(ln.strip())
        ]
        if errors:
            raise DeployError(f"{what}: debugfs: {errors[0].strip()}")
        return proc.stdout.decode("utf-8", "replace")

    # -- reading ----------------------------------------------------------------------------- #

    def stat(self, path: str) -> Inode | None:
        """The inode at ``path`` (symlinks are not followed), or None if there is none."""
        _check_path(path)
        proc = tools.run(["debugfs", "-R", f'stat "{path}"', self.spec], what=f"reading {path} in the {self.label} of {self.path}")
        text = proc.stdout.decode("utf-8", "replace")
        if "Inode:" not in text:
            return None
        mtype = re.search(r"Type:\s*(\S+)\s+Mode:\s*([0-7]+)", text)
        owner = re.search(r"User:\s*(\d+)\s+Group:\s*(\d+)", text)
        size = re.search(r"Size:\s*(\d+)", text)
        if not (mtype and owner and size):
            raise DeployError(f"cannot parse debugfs' description of {path} in {self.path}")
        kind = {"regular": "file", "directory": "dir", "symlink": "symlink"}.get(mtype.group(1), "other")
        link = re.search(r'Fast link dest:\s*"(.*)"', text)
        return Inode(path, kind, int(mtype.group(2), 8), int(owner.group(1)), int(owner.group(2)), int(size.group(1)),
                     link.group(1) if link else None)

    def exists(self, path: str) -> bool:
        return self.stat(path) is not None

    def listdir(self, path: str) -> dict[str, Inode]:
        """Entries of a folder (without . and ..) by name; an error if the folder does not exist."""
        _check_path(path)
        out = self.debugfs([f'ls -p "{path}"'], what=f"listing {path} in the {self.label} of {self.path}")
        entries = {}
        for line in out.splitlines():
            # /inode/mode/uid/gid/name/size/   (size is empty for folders)
            m = re.fullmatch(r"/(\d+)/([0-7]+)/(\d+)/(\d+)/(.*)/(\d*)/", line.strip())
            if not m or m.group(5) in (".", ".."):
                continue
            mode = int(m.group(2), 8)
            name = m.group(5)
            entries[name] = Inode(str(PurePosixPath(path) / name), _kind(mode), mode & 0o7777,
                                  int(m.group(3)), int(m.group(4)), int(m.group(6) or 0))
        return entries

    def read(self, path: str) -> bytes:
        _check_path(path)
        inode = self.stat(path)
        if inode is None or inode.kind != "file":
            raise DeployError(f"{self.label} of {self.path}: no file {path}")
        with tempfile.TemporaryDirectory(prefix="maskgate-ext4-") as tmp:
            dest = Path(tmp) / "out"
            self.debugfs([f'dump "{path}" "{dest}"'], what=f"reading {path} in the {self.label} of {self.path}")
            return dest.read_bytes()

    def info(self) -> dict[str, int]:
        """Block size, block count, free blocks, inode count and free inodes (from the superblock)."""
        proc = tools.run(["dumpe2fs", "-h", self.spec], what=f"reading the {self.label} superblock of {self.path}")
        text = proc.stdout.decode("utf-8", "replace")
        keys = {"Block size": "block_size", "Block count": "block_count", "Free blocks": "free_blocks",
                "Inode count": "inode_count", "Free inodes": "free_inodes"}
        info = {}
        for label, key in keys.items():
            m = re.search(rf"^{label}:\s*(\d+)", text, re.M)
            if not m:
                raise DeployError(f"{self.path}: the {self.label} is not an ext2/3/4 file system (no '{label}' in its superblock)")
            info[key] = int(m.group(1))
        feats = re.search(r"^Filesystem features:\s*(.*)$", text, re.M)
        if feats and "needs_recovery" in feats.group(1).split():
            raise DeployError(f"{self.path}: the {self.label} was not cleanly unmounted (journal needs recovery); start from the downloaded image")
        return info

    def free_ranges(self) -> list[tuple[int, int]]:
        """Free block ranges ``(first, last)`` inclusive, in file-system blocks."""
        proc = tools.run(["dumpe2fs", self.spec], what=f"reading the {self.label} block bitmaps of {self.path}")
        ranges = []
        in_groups = False
        for line in proc.stdout.decode("utf-8", "replace").splitlines():
            # the superblock header above the groups has a "Free blocks:" line too, holding a count
            # of free blocks, not a range: read only the groups' lines
            in_groups = in_groups or line.startswith("Group ")
            line = line.strip()
            if not in_groups or not line.startswith("Free blocks:"):
                continue
            for item in line[len("Free blocks:"):].split(","):
                item = item.strip()
                if not item:
                    continue
                a, _, b = item.partition("-")
                ranges.append((int(a), int(b or a)))
        return ranges

    def used_ranges(self, part_length: int) -> list[tuple[int, int]]:
        """Byte ranges (absolute in the image) that hold file-system data, for the bmap."""
        info = self.info()
        bs = info["block_size"]
        fs_bytes = min(info["block_count"] * bs, part_length)
        used = []
        pos = 0
        for first, last in sorted(self.free_ranges()):
            if first * bs > pos:
                used.append((pos, first * bs))
            pos = max(pos, (last + 1) * bs)
        if pos < fs_bytes:
            used.append((pos, fs_bytes))
        return [(self.offset + a, self.offset + min(b, fs_bytes)) for a, b in used if a < fs_bytes]

    # -- checking and resizing -------------------------------------------------------------- #

    def check(self) -> None:
        """Fail unless e2fsck (read-only, forced) finds the file system clean."""
        proc = tools.run(["e2fsck", "-f", "-n", self.spec], what=f"checking the {self.label} of {self.path}", ok_codes=range(256))
        if proc.returncode != 0:
            raise DeployError(f"the {self.label} of {self.path} is not clean (e2fsck exit {proc.returncode}): {tools.last_line(proc)}")

    def resize(self, nbytes: int) -> None:
        """Grow the file system to ``nbytes`` (rounded down to whole blocks)."""
        # resize2fs insists on a freshly checked file system; -p fixes only what is safe to fix.
        proc = tools.run(["e2fsck", "-f", "-p", self.spec], what=f"checking the {self.label} of {self.path} before resizing", ok_codes=range(256))
        if proc.returncode not in (0, 1):
            raise DeployError(f"the {self.label} of {self.path} needs repair before it can grow (e2fsck exit {proc.returncode}): {tools.last_line(proc)}")
        tools.run(["resize2fs", self.spec, f"{nbytes // 1024}K"], what=f"growing the {self.label} of {self.path}")

    # -- writing ----------------------------------------------------------------------------- #

    def apply(self, batch: "Batch") -> None:
        """Apply a batch of changes in one debugfs run (existing files and links are replaced)."""
        listings: dict[str, dict[str, Inode]] = {}  # folder -> entries, as they will be after the commands so far

        def entries(folder: str) -> dict[str, Inode]:
            if folder not in listings:
                listings[folder] = self.listdir(folder)
            return listings[folder]

        commands: list[str] = []
        for op in batch.ops:
            path = PurePosixPath(op.path)
            parent, name = str(path.parent), path.name
            old = entries(parent).get(name)
            if op.kind == "dir":
                if old is not None:
                    if old.kind != "dir":
                        raise DeployError(f"{self.path}: cannot create folder {op.path}: a {old.kind} is in the way")
                    continue  # an existing folder keeps its owner and mode
                commands += [f'mkdir "{op.path}"', f'sif "{op.path}" mode 0{st.S_IFDIR | op.mode:o}']
                listings[op.path] = {}
            else:
                if old is not None:
                    if old.kind == "dir":
                        raise DeployError(f"{self.path}: cannot write {op.path}: it is a folder in the base image")
                    commands.append(f'rm "{op.path}"')
                if op.kind == "file":
                    commands += [f'cd "{parent}"', f'write "{op.source}" "{name}"', "cd /",
                                 f'sif "{op.path}" mode 0{st.S_IFREG | op.mode:o}']
                else:
                    commands.append(f'symlink "{op.path}" "{op.target}"')
            entries(parent)[name] = Inode(op.path, op.kind, op.mode, op.uid, op.gid, 0)
            commands += [f'sif "{op.path}" uid {op.uid}', f'sif "{op.path}" gid {op.gid}']
        if commands:
            self.debugfs(commands, write=True)


@dataclass
class _Op:
    kind: str  # "dir" | "file" | "symlink"
    path: str
    mode: int = 0o755
    uid: int = 0
    gid: int = 0
    source: str = ""
    target: str = ""


@dataclass
class Batch:
    """Changes to make in an ext4 file system, in order.  Parent folders must come before their contents."""

    ops: list[_Op] = field(default_factory=list)
    _tmp: tempfile.TemporaryDirectory | None = None

    def mkdir(self, path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> None:
        """Create a folder with this owner and mode; a folder that already exists is left as it is."""
        _check_path(path)
        self.ops.append(_Op("dir", path, mode, uid, gid))

    def write(self, path: str, source: str | Path, mode: int = 0o644, uid: int = 0, gid: int = 0) -> None:
        _check_path(path)
        self.ops.append(_Op("file", path, mode, uid, gid, source=str(Path(source).resolve())))

    def write_bytes(self, path: str, data: bytes, mode: int = 0o644, uid: int = 0, gid: int = 0) -> None:
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="maskgate-batch-")
        src = Path(self._tmp.name) / f"{len(self.ops):05d}"
        src.write_bytes(data)
        self.write(path, src, mode, uid, gid)

    def symlink(self, path: str, target: str, uid: int = 0, gid: int = 0) -> None:
        _check_path(path)
        if '"' in target or "\n" in target:
            raise DeployError(f"symlink target {target!r} has characters debugfs cannot take")
        self.ops.append(_Op("symlink", path, 0o777, uid, gid, target=target))

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> "Batch":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _check_path(path: str) -> None:
    if not _SAFE_PATH.fullmatch(path) or "//" in path or "/../" in path + "/":
        raise DeployError(f"path {path!r} in the image has characters this tool does not write (letters, digits and ._+@:=,~- only)")


__all__ = ["Ext4", "Batch", "Inode"]
