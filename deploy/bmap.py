"""Block maps: which 4 KiB blocks of an image hold data, with a SHA-256 per range.

The file format is bmaptool's version 2.0, so ``bmaptool copy OUT.img /dev/sdX`` uses the same map
that ``maskgate image flash`` does.  The build derives the map from the file systems themselves (the
ext4 block bitmaps and the FAT), not from holes in the file: a block is skipped only if no file
system uses it, so whatever an old card holds there is never read.
"""

from __future__ import annotations

import hashlib
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from maskgate.deploy.imagefile import sha256_range
from maskgate.errors import DeployError

BLOCK = 4096


@dataclass(frozen=True)
class Range:
    first: int  # block numbers, inclusive
    last: int
    sha256: str

    def byte_span(self, image_size: int, block_size: int = BLOCK) -> tuple[int, int]:
        return self.first * block_size, min((self.last + 1) * block_size, image_size)


@dataclass(frozen=True)
class Bmap:
    image_size: int
    block_size: int
    ranges: tuple[Range, ...]

    @property
    def blocks(self) -> int:
        return (self.image_size + self.block_size - 1) // self.block_size

    @property
    def mapped_blocks(self) -> int:
        return sum(r.last - r.first + 1 for r in self.ranges)

    @property
    def mapped_bytes(self) -> int:
        return sum(b - a for a, b in (r.byte_span(self.image_size, self.block_size) for r in self.ranges))


def merge_ranges(byte_ranges, image_size: int, block_size: int = BLOCK) -> list[tuple[int, int]]:
    """Byte ranges -> sorted, merged, block-aligned inclusive block ranges ``(first, last)``."""
    blocks = []
    for a, b in byte_ranges:
        a, b = max(0, a), min(b, image_size)
        if b <= a:
            continue
        blocks.append((a // block_size, (b - 1) // block_size))
    blocks.sort()
    merged: list[list[int]] = []
    for first, last in blocks:
        if merged and first <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    return [(a, b) for a, b in merged]


def create(image: str | Path, byte_ranges) -> Bmap:
    """The bmap of ``image`` covering ``byte_ranges``, with the checksum of each range."""
    size = os.path.getsize(image)
    ranges = []
    with open(image, "rb") as f:
        for first, last in merge_ranges(byte_ranges, size):
            ranges.append(Range(first, last, sha256_range(f, first * BLOCK, min((last + 1) * BLOCK, size))))
    return Bmap(size, BLOCK, tuple(ranges))


def dumps(bmap: Bmap) -> str:
    """The bmap file text (bmaptool format 2.0, with its own checksum filled in)."""
    pct = 100.0 * bmap.mapped_blocks / max(bmap.blocks, 1)
    lines = [
        '<?xml version="1.0" ?>',
        "<!-- Block map of a maskgate SD image (written by 'maskgate image build'); bmaptool format 2.0. -->",
        '<bmap version="2.0">',
        f"    <ImageSize> {bmap.image_size} </ImageSize>",
        f"    <BlockSize> {bmap.block_size} </BlockSize>",
        f"    <BlocksCount> {bmap.blocks} </BlocksCount>",
        f"    <!-- Mapped: {pct:.1f}% -->",
        f"    <MappedBlocksCount> {bmap.mapped_blocks} </MappedBlocksCount>",
        "    <ChecksumType> sha256 </ChecksumType>",
        f"    <BmapFileChecksum> {'0' * 64} </BmapFileChecksum>",
        "    <BlockMap>",
    ]
    for r in bmap.ranges:
        span = f"{r.first}" if r.first == r.last else f"{r.first}-{r.last}"
        lines.append(f'        <Range chksum="{r.sha256}"> {span} </Range>')
    lines += ["    </BlockMap>", "</bmap>", ""]
    text = "\n".join(lines)
    checksum = hashlib.sha256(text.encode()).hexdigest()
    return text.replace("0" * 64, checksum, 1)


def write(bmap: Bmap, path: str | Path) -> None:
    Path(path).write_text(dumps(bmap), encoding="utf-8")


def load(path: str | Path) -> Bmap:
    """Read and verify a bmap file (format 2.x, sha256)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        root = ET.fromstring(text)
    except OSError as exc:
        raise DeployError(f"cannot read bmap {path}: {exc.strerror}") from None
    except ET.ParseError as exc:
        raise DeployError(f"bmap {path} is not valid XML: {exc}") from None
    if root.tag != "bmap" or not root.get("version", "").startswith("2."):
        raise DeployError(f"bmap {path}: unsupported format version {root.get('version')!r} (need 2.x)")

    def field(name: str) -> str:
        el = root.find(name)
        if el is None or el.text is None:
            raise DeployError(f"bmap {path}: missing <{name}>")
        return el.text.strip()

    if field("ChecksumType") != "sha256":
        raise DeployError(f"bmap {path}: checksum type {field('ChecksumType')!r} is not supported (need sha256)")
    stored = field("BmapFileChecksum")
    zeroed = text.replace(stored, "0" * len(stored), 1)
    if hashlib.sha256(zeroed.encode()).hexdigest() != stored:
        raise DeployError(f"bmap {path} is corrupt (its own checksum does not match)")
    image_size, block_size = int(field("ImageSize")), int(field("BlockSize"))
    ranges = []
    for el in root.iter("Range"):
        m = re.fullmatch(r"\s*(\d+)(?:\s*-\s*(\d+))?\s*", el.text or "")
        if not m or not el.get("chksum"):
            raise DeployError(f"bmap {path}: bad range {el.text!r}")
        first = int(m.group(1))
        ranges.append(Range(first, int(m.group(2) or first), el.get("chksum")))
    return Bmap(image_size, block_size, tuple(ranges))


def find_for(image: str | Path) -> Path | None:
    """The bmap bmaptool would pick for ``image``: IMAGE.bmap, then with extensions stripped one by one."""
    stem = str(image)
    while True:
        candidate = Path(stem + ".bmap")
        if candidate.is_file():
            return candidate
        root, ext = os.path.splitext(stem)
        if not ext:
            return None
        stem = root


__all__ = ["Bmap", "Range", "BLOCK", "create", "dumps", "write", "load", "find_for", "merge_ranges"]
