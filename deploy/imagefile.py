"""Image files as plain files: copy a base image (raw or ``.xz``) sparsely, hash it, grow it.

All-zero 4 MiB chunks are skipped with a seek instead of written, so a 2.7 GB Raspberry Pi OS image
with 1 GB of data costs about 1 GB on disk.  Hashing happens while copying, so reading the base once
gives both the working copy and the base's SHA-256 for the manifest.
"""

from __future__ import annotations

import hashlib
import lzma
import os
from pathlib import Path

from maskgate.deploy.progress import Progress
from maskgate.errors import DeployError

CHUNK = 4 << 20
_ZERO = bytes(CHUNK)


def is_xz(path: str | Path) -> bool:
    with open(path, "rb") as f:
        return f.read(6) == b"\xfd7zXZ\x00"


def copy_base(src: str | Path, dst: str | Path, *, progress_label: str = "") -> tuple[str, int]:
    """Copy (decompressing ``.xz``) ``src`` to a new sparse file ``dst``; return (sha256 of src as given, size of dst).

    With ``progress_label``, progress (of the bytes read from ``src``) goes to stderr.
    """
    src, dst = Path(src), Path(dst)
    digest = hashlib.sha256()
    try:
        compressed = is_xz(src)
        progress = Progress(progress_label, src.stat().st_size, enabled=None if progress_label else False)
        with open(src, "rb") as raw, open(dst, "wb") as out:
            if compressed:
                reader = _HashingReader(raw, digest)
                stream = lzma.open(reader, "rb")
            else:
                stream = raw
            pos = 0
            while True:
                data = stream.read(CHUNK)
                if not data:
                    break
                if not compressed:
                    digest.update(data)
                if data != _ZERO[: len(data)]:
                    out.seek(pos)
                    out.write(data)
                pos += len(data)
                progress.update(raw.tell())
            out.truncate(pos)
        progress.finish()
    except lzma.LZMAError as exc:
        raise DeployError(f"{src}: not a valid .xz file ({exc})") from None
    except FileNotFoundError:
        raise DeployError(f"base image not found: {src}") from None
    except IsADirectoryError:
        raise DeployError(f"base image {src} is a folder, not an image file") from None
    except OSError as exc:
        raise DeployError(f"copying {src} to {dst}: {exc.strerror or exc}") from None
    if pos == 0:
        raise DeployError(f"base image {src} is empty")
    return digest.hexdigest(), pos


class _HashingReader:
    """A read-only file wrapper that hashes what passes through (the compressed bytes of an .xz)."""

    def __init__(self, f, digest):
        self._f, self._digest = f, digest

    def read(self, n=-1):
        data = self._f.read(n)
        self._digest.update(data)
        return data

    def readable(self):
        return True

    def __getattr__(self, name):
        return getattr(self._f, name)


def copy_range(src: str | Path, dst: str | Path, length: int, *, src_offset: int = 0, dst_offset: int = 0,
               sparse_from: int = 0) -> None:
    """Copy ``length`` bytes from ``src`` into ``dst`` (which must exist); all-zero chunks at or past
    ``sparse_from`` (relative to the range) are skipped, so they stay holes where ``dst`` had holes."""
    with open(src, "rb") as s, open(dst, "r+b") as d:
        pos = 0
        while pos < length:
            n = min(CHUNK, length - pos)
            data = os.pread(s.fileno(), n, src_offset + pos)
            if len(data) < n:  # past the end of src: zeros
                data += bytes(n - len(data))
            if pos < sparse_from or data != _ZERO[:n]:
                os.pwrite(d.fileno(), data, dst_offset + pos)
            pos += n


def grow(path: str | Path, size: int) -> None:
    """Extend a file to ``size`` bytes (a hole; never shrinks)."""
    if os.path.getsize(path) < size:
        os.truncate(path, size)


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_range(f, start: int, end: int) -> str:
    digest = hashlib.sha256()
    pos = start
    while pos < end:
        n = min(CHUNK, end - pos)
        data = os.pread(f.fileno(), n, pos)
        if not data:
            break
        digest.update(data)
        pos += len(data)
    return digest.hexdigest()


__all__ = ["is_xz", "copy_base", "copy_range", "grow", "sha256_file", "sha256_range", "CHUNK"]
