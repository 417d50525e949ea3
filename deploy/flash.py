"""``maskgate image flash``: write a built image to a card, read it back, then give the card its identity.

1. The image is opened and checked: its partition table, its bmap (IMAGE.bmap, bmaptool's format)
   when there is one, and the defaults in its /etc/maskgate/config.toml, which the card's settings
   are validated against before anything is written.
2. The target is checked (:mod:`maskgate.deploy.safety`) and, unless ``--yes``, the user confirms.
3. Only the blocks the bmap lists are written (all of them without a bmap), each range's SHA-256
   checked against the bmap on the way; then the card is synced, its cache dropped, and every written
   range read back and compared.
4. The card's own settings (:mod:`maskgate.deploy.provision`) go into the boot partition's
   ``maskgate/`` folder, the lock pin's power-on line into config.txt, and are read back too.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from maskgate.deploy import bmap as bmaplib, layout, partitions, safety, tools
from maskgate.deploy.ext4 import Ext4
from maskgate.deploy.fat import Fat
from maskgate.deploy.imagefile import CHUNK, is_xz
from maskgate.deploy.progress import Progress
from maskgate.deploy.provision import Rendered
from maskgate.errors import DeployError, UnsafeTarget

log = logging.getLogger(__name__)

TOOLS = ("sfdisk", "mcopy", "mdir", "mmd", "mdeltree", "debugfs")
SETTINGS_ITEMS = ("device.toml", "secrets", "hostname", "wifi", "ssh")


@dataclass
class Image:
    path: Path
    size: int
    table: partitions.PartitionTable
    bmap: bmaplib.Bmap | None
    defaults_text: str

    def ranges(self) -> list[tuple[int, int, str | None]]:
        """(start, end, sha256 or None) byte ranges to write, in order."""
        if self.bmap is None:
            return [(0, self.size, None)]
        return [(*r.byte_span(self.size, self.bmap.block_size), r.sha256) for r in self.bmap.ranges]

    @property
    def to_write(self) -> int:
        return sum(b - a for a, b, _ in self.ranges())


@dataclass
class Result:
    target: str
    name: str
    written: int = 0
    verified: bool = False
    settings: tuple[str, ...] = ()
    error: str = ""


def open_image(path: str | Path, *, bmap_path: str | Path | None = None, use_bmap: bool = True) -> Image:
    tools.require(*TOOLS)
    path = Path(path)
    if not path.is_file():
        raise DeployError(f"image not found: {path}")
    if is_xz(path):
        raise DeployError(f"{path} is xz-compressed: decompress it first (xz -dk {path})")
    size = path.stat().st_size
    table = partitions.read(path)
    if table.boot.end > size or table.root.offset >= size:
        raise DeployError(f"{path} is shorter than its partition table says (truncated download?)")
    bm = None
    if use_bmap:
        found = Path(bmap_path) if bmap_path else bmaplib.find_for(path)
        if bmap_path and not found.is_file():
            raise DeployError(f"bmap not found: {bmap_path}")
        if found is not None:
            bm = bmaplib.load(found)
            if bm.image_size != size:
                raise DeployError(f"bmap {found} is for an image of {bm.image_size} bytes, {path} has {size}: rebuild, or pass --no-bmap")
            log.info("using bmap %s: %d of %d MiB hold data", found.name, bm.mapped_bytes >> 20, size >> 20)
    root = Ext4(path, table.root.offset)
    if not root.exists(layout.DEFAULT_CONFIG):
        raise DeployError(f"{path} has no {layout.DEFAULT_CONFIG}: not a maskgate image (make one with 'maskgate image build')")
    defaults = root.read(layout.DEFAULT_CONFIG).decode("utf-8")
    return Image(path, size, table, bm, defaults)


def ask(question: str) -> bool:
    """Ask on the terminal; no terminal means no."""
    if not sys.stdin.isatty():
        raise DeployError("refusing to overwrite without --yes: there is no terminal to ask for confirmation")
    print(question, file=sys.stderr)
    return input("Type 'yes' to continue: ").strip().lower() == "yes"


def flash(image: Image, target_path: str, rendered: Rendered, *, yes: bool = False,
          confirm: Callable[[str], bool] = ask, settings_only: bool = False, system: safety.System = safety.System()) -> Result:
    """Write one card: image (unless settings_only), read-back check, then its settings."""
    result = Result(target_path, rendered.settings.name)
    target = safety.check_target(target_path, image.size, image=image.path, system=system)
    if settings_only and not target.exists:
        raise UnsafeTarget(f"{target_path} does not exist: --settings-only needs a card that was flashed before")
    if not yes and (target.kind == "block" or target.size > 0):
        what = "rewrite the maskgate settings on" if settings_only else "overwrite"
        if not confirm(f"About to {what} {target.path} ({target.description}) for '{rendered.settings.name}'"
                       f"{'' if settings_only else ' with ' + image.path.name + '; everything on it will be lost'}."):
            raise DeployError(f"not confirmed: {target.path} was left alone")
    if not settings_only:
        result.written = write_image(image, target)
        verify(image, target)
        result.verified = True
    result.settings = tuple(write_settings(image, target, rendered, system=system))
    return result


def _open_target(target: safety.Target, flags: int) -> int:
    if target.kind == "block":
        flags |= os.O_EXCL  # the kernel refuses a block device that is mounted or otherwise claimed
    try:
        return os.open(target.path, flags | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            raise UnsafeTarget(f"{target.path} is busy (mounted, or used by another program)") from None
        if exc.errno == errno.EACCES and target.kind == "block":
            raise DeployError(f"cannot open {target.path}: permission denied (writing a card needs root: sudo)") from None
        raise DeployError(f"cannot open {target.path}: {exc.strerror}") from None


def write_image(image: Image, target: safety.Target) -> int:
    flags = os.O_WRONLY | (os.O_CREAT if target.kind == "file" else 0)
    fd = _open_target(target, flags)
    written = 0
    total = image.to_write
    progress = Progress(f"writing {target.path}", total)
    try:
        if target.kind == "file" and os.fstat(fd).st_size < image.size:
            os.ftruncate(fd, image.size)
        with open(image.path, "rb") as src:
            for start, end, expected in image.ranges():
                digest = hashlib.sha256()
                pos = start
                while pos < end:
                    data = os.pread(src.fileno(), min(CHUNK, end - pos), pos)
                    if not data:
                        raise DeployError(f"{image.path} ended early at byte {pos}")
                    digest.update(data)
                    _pwrite_all(fd, data, pos, target.path)
                    pos += len(data)
                    written += len(data)
                    progress.update(written)
                if expected is not None and digest.hexdigest() != expected:
                    raise DeployError(f"{image.path} does not match its bmap at bytes {start}-{end}: "
                                      "was the image changed after it was built? (rebuild it, or pass --no-bmap)")
        os.fsync(fd)
        progress.finish()
    except OSError as exc:
        raise DeployError(f"writing {target.path} failed at byte {written}: {exc.strerror}") from None
    finally:
        os.close(fd)
    return written


def _pwrite_all(fd: int, data: bytes, pos: int, name: str) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, pos)
        if n <= 0:
            raise DeployError(f"{name}: the device stopped taking data at byte {pos}")
        view, pos = view[n:], pos + n


def _drop_cache(fd: int) -> None:
    """Make the next reads come from the card, not from the page cache."""
    os.fsync(fd)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    except OSError:  # pragma: no cover - some file systems do not support it
        pass


def verify(image: Image, target: safety.Target) -> None:
    """Read every written range back from the target and compare it with the image."""
    fd = _open_target(target, os.O_RDONLY)
    progress = Progress(f"verifying {target.path}", image.to_write)
    try:
        _drop_cache(fd)
        with open(image.path, "rb") as src:
            for start, end, expected in image.ranges():
                got, want = hashlib.sha256(), hashlib.sha256()
                pos = start
                while pos < end:
                    n = min(CHUNK, end - pos)
                    data = os.pread(fd, n, pos)
                    if len(data) != n:
                        raise DeployError(f"verification of {target.path} failed: it ended at byte {pos + len(data)}")
                    got.update(data)
                    if expected is None:
                        want.update(os.pread(src.fileno(), n, pos))
                    pos += n
                    progress.add(n)
                if got.hexdigest() != (expected or want.hexdigest()):
                    raise DeployError(f"verification of {target.path} failed: bytes {start}-{end} read back differ "
                                      "from the image (bad card or reader?)")
        progress.finish()
    finally:
        os.close(fd)
    log.info("verified %s: %d MiB read back", target.path, image.to_write >> 20)


def write_settings(image: Image, target: safety.Target, rendered: Rendered, *, system: safety.System = safety.System()) -> list[str]:
    """Put the card's settings into its boot partition and read them back."""
    table = partitions.read(target.path)
    boot = table.boot
    if (boot.start, boot.size) != (image.table.boot.start, image.table.boot.size):
        raise DeployError(f"{target.path}: its boot partition is not where the image has it; flash the image first")
    if target.kind == "block":
        # A desktop may have auto-mounted the freshly written partitions.
        rdev = os.stat(target.path).st_rdev
        name = safety.block_name(os.major(rdev), os.minor(rdev), system)
        if name in safety.disks_in_use(system):
            raise UnsafeTarget(f"a partition of {target.path} got mounted (by a desktop automounter?); unmount it "
                               "and run flash again with --settings-only")
    fat = Fat(target.path, boot.offset, label="boot partition")
    for item in SETTINGS_ITEMS:
        fat.remove(f"{layout.BOOT_SETTINGS}/{item}")
    for path, data in rendered.files.items():
        fat.write(path, data)
    config_txt = None
    if fat.exists("/config.txt"):
        current = fat.read("/config.txt").decode("utf-8", "surrogateescape")
        config_txt = rendered.config_txt(current).encode("utf-8", "surrogateescape")
        fat.write("/config.txt", config_txt)
    fd = _open_target(target, os.O_RDONLY)
    progress = Progress(f"verifying {target.path}", image.to_write)
    try:
        _drop_cache(fd)
    finally:
        os.close(fd)
    expected = dict(rendered.files)
    if config_txt is not None:
        expected["/config.txt"] = config_txt
    for path, data in expected.items():
        if fat.read(path) != data:
            raise DeployError(f"{target.path}: {path} reads back different from what was written (bad card?)")
    log.info("wrote %d settings files for '%s' to the boot partition of %s", len(expected), rendered.settings.name, target.path)
    return sorted(expected)


__all__ = ["Image", "Result", "open_image", "flash", "write_image", "verify", "write_settings", "ask"]
