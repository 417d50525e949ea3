"""Running the disk-image tools (sfdisk, mtools, e2fsprogs): one place for errors and a fixed environment.

Every tool runs with a pinned environment so that two builds from the same inputs give the same bytes:
``LC_ALL=C`` (parseable output), ``TZ=UTC`` (FAT timestamps are local time), ``SOURCE_DATE_EPOCH``
(mtools' timestamps), ``E2FSPROGS_FAKE_TIME`` and ``E2FSCK_TIME`` (inode and superblock times written
by e2fsprogs).
A missing tool or a failing run is a :class:`~maskgate.errors.DeployError` naming the tool, the
Debian package that provides it and the tool's own last line of complaint.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Sequence

from maskgate.errors import DeployError

log = logging.getLogger(__name__)

#: tool -> Debian package that ships it (what the error message tells the user to install)
PACKAGES = {
    "sfdisk": "fdisk",
    "mcopy": "mtools",
    "mdir": "mtools",
    "mmd": "mtools",
    "mdel": "mtools",
    "mdeltree": "mtools",
    "mtype": "mtools",
    "debugfs": "e2fsprogs",
    "dumpe2fs": "e2fsprogs",
    "e2fsck": "e2fsprogs",
    "resize2fs": "e2fsprogs",
    "mkfs.ext4": "e2fsprogs",
    "mkfs.vfat": "dosfstools",
    "fsck.vfat": "dosfstools",
    "truncate": "coreutils",
}

#: The build's clock: every timestamp written into an image.  Set by :func:`set_epoch`.
_epoch: int | None = None


def set_epoch(epoch: int | None) -> None:
    """Pin the timestamps the tools write (``None``: the tools use the real clock)."""
    global _epoch
    _epoch = epoch


def tool_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"LC_ALL": "C", "LANG": "C", "TZ": "UTC", "MTOOLS_SKIP_CHECK": "1"})
    # mtools otherwise asks on the terminal what to do about a name clash.
    env.pop("MTOOLSRC", None)
    if _epoch is not None:
        env["SOURCE_DATE_EPOCH"] = str(_epoch)
        env["E2FSPROGS_FAKE_TIME"] = str(_epoch)
        env["E2FSCK_TIME"] = str(_epoch)
    return env


def which(tool: str) -> str | None:
    """The tool's path; sbin folders are searched too (they are often missing from a user's PATH)."""
    path = os.environ.get("PATH", os.defpath)
    extra = [d for d in ("/usr/sbin", "/sbin", "/usr/local/sbin") if d not in path.split(os.pathsep)]
    return shutil.which(tool, path=os.pathsep.join([path, *extra]))


def require(*tools: str) -> None:
    """Fail with one line naming every missing tool and the packages to install."""
    missing = [t for t in tools if which(t) is None]
    if missing:
        pkgs = sorted({PACKAGES.get(t, t) for t in missing})
        raise DeployError(f"missing tool(s) {', '.join(missing)}: install the Debian package(s) {' '.join(pkgs)}")


def run(
    args: Sequence[str],
    *,
    what: str = "",
    input: bytes | None = None,
    ok_codes: Sequence[int] = (0,),
    timeout: float | None = 3600,
) -> subprocess.CompletedProcess:
    """Run a tool and return the finished process (stdout/stderr as bytes); raise DeployError on failure.

    ``what`` says what the run was for ("reading the partition table of base.img"); it leads the error.
    """
    tool = args[0]
    exe = which(tool)
    if exe is None:
        require(tool)
    log.debug("run: %s", " ".join(args))
    try:
        proc = subprocess.run(
            [exe, *args[1:]], input=input, capture_output=True, env=tool_env(), timeout=timeout,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise DeployError(f"{what or tool}: {tool} did not finish within {timeout:.0f} s") from None
    except OSError as exc:
        raise DeployError(f"{what or tool}: cannot run {tool}: {exc.strerror}") from None
    if proc.returncode not in ok_codes:
        raise DeployError(f"{what or tool}: {tool} failed (exit {proc.returncode}): {last_line(proc)}")
    return proc


def last_line(proc: subprocess.CompletedProcess) -> str:
    """The most telling line a failed tool printed (stderr first), for a one-line error."""
    for stream in (proc.stderr, proc.stdout):
        text = (stream or b"").decode("utf-8", "replace")
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        # e2fsprogs print their version banner first; it says nothing about the failure.
        lines = [ln for ln in lines if not _is_banner(ln)]
        if lines:
            return lines[-1]
    return "no output"


def _is_banner(line: str) -> bool:
    words = line.split()
    return len(words) >= 2 and words[0] in {"debugfs", "e2fsck", "resize2fs", "dumpe2fs", "mke2fs"} and words[1][:1].isdigit()


__all__ = ["PACKAGES", "set_epoch", "tool_env", "which", "require", "run", "last_line"]
