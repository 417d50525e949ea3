"""Reading an ext4 file system's block bitmaps for the bmap: every used block is mapped, no free one."""

from __future__ import annotations

import re
import subprocess

from conftest import need_tool
from maskgate.deploy.ext4 import Ext4


def test_free_ranges_are_the_bitmaps_not_the_superblocks_free_count(tmp_path):
    """dumpe2fs prints "Free blocks: N" (a count) above the groups' "Free blocks: a-b" (ranges).

    Found when a built image's free-block count equalled a block of firstboot.sh: the bmap skipped it,
    and flashing onto a used card left old data there.
    """
    need_tool("mke2fs")
    need_tool("dumpe2fs")
    src = tmp_path / "root"
    src.mkdir()
    (src / "data.bin").write_bytes(bytes(range(256)) * 4096)  # 1 MiB: 256 blocks of 4 KiB
    image = tmp_path / "root.ext4"
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", "-d", str(src), str(image), "8M"], check=True)
    fs = Ext4(image)
    free = fs.free_ranges()
    info = fs.info()
    assert sum(b - a + 1 for a, b in free) == info["free_blocks"]
    # the blocks of the file are used, and none of them is reported free
    extents = fs.debugfs(["stat /data.bin"])
    used = [(int(a), int(b)) for a, b in re.findall(r"\(\d+(?:-\d+)?\):(\d+)-(\d+)", extents)]
    assert sum(b - a + 1 for a, b in used) == 256
    for a, b in used:
        assert not any(fa <= b and a <= fb for fa, fb in free)
