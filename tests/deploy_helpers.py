"""Helpers for the deploy tests: a stand-in Raspberry Pi OS image made with the real tools, tiny wheels.

The stand-in is what ``maskgate image build`` needs to see in a Raspberry Pi OS Lite image, in a few
MiB: an MBR with a FAT32 ``bootfs`` (config.txt, cmdline.txt, and the userconf.txt / ssh files the
build must drop) and an ext4 ``rootfs`` with /etc (os-release, passwd, shadow with a password to
lock), the systemd folders with the first-user wizard enabled, and an aarch64 ELF header standing in
for /usr/bin/python3.X.  Nothing is mounted.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

MiB = 1 << 20
SECTOR = 512
DISK_ID = "0x6c5f3a2b"
ALIGN = 4 * MiB

TOOLS = {
    "sfdisk": "fdisk", "mkfs.vfat": "dosfstools", "fsck.vfat": "dosfstools", "mcopy": "mtools", "mdir": "mtools",
    "mkfs.ext4": "e2fsprogs", "debugfs": "e2fsprogs", "e2fsck": "e2fsprogs", "resize2fs": "e2fsprogs",
    "dumpe2fs": "e2fsprogs", "bmaptool": "bmap-tools", "systemd-analyze": "systemd",
}


def tool_path(tool: str) -> str | None:
    path = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin:/sbin"
    return shutil.which(tool, path=path)


def require_tools(*tools: str) -> None:
    """Skip the test if a tool is missing; fail instead when MASKGATE_REQUIRE_TOOLS=1 (CI)."""
    missing = [t for t in tools if tool_path(t) is None]
    if not missing:
        return
    msg = f"missing tools {', '.join(missing)} (Debian packages: {' '.join(sorted({TOOLS.get(t, t) for t in missing}))})"
    if os.environ.get("MASKGATE_REQUIRE_TOOLS") == "1":
        pytest.fail(msg)
    pytest.skip(msg)


def run(*args, input: bytes | None = None, ok=(0,)) -> subprocess.CompletedProcess:
    exe = tool_path(args[0]) or args[0]
    env = dict(os.environ, LC_ALL="C", TZ="UTC", MTOOLS_SKIP_CHECK="1")
    proc = subprocess.run([exe, *map(str, args[1:])], input=input, capture_output=True, env=env)
    if proc.returncode not in ok:
        raise AssertionError(f"{' '.join(map(str, args))} exited {proc.returncode}: {proc.stderr.decode(errors='replace')}")
    return proc


# ---------------------------------------------------------------------------------------------- #
# The stand-in base image

PASSWD = """\
root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
systemd-network:x:998:998:systemd Network Management:/:/usr/sbin/nologin
messagebus:x:999:999::/nonexistent:/usr/sbin/nologin
pi:x:1000:1000:,,,:/home/pi:/bin/bash
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
"""
GROUP = """\
root:x:0:
daemon:x:1:
sudo:x:27:pi
video:x:44:pi
shadow:x:42:
gpio:x:997:pi
systemd-network:x:998:
messagebus:x:999:
pi:x:1000:
nogroup:x:65534:
"""
# pi has a password hash here, as a Raspberry Pi OS image made with a password would: the build must lock it.
SHADOW = """\
root:*:19000:0:99999:7:::
daemon:*:19000:0:99999:7:::
systemd-network:!*:19000::::::
messagebus:!:19000::::::
pi:$6$standin$5Bq3L0l1o0oGJk2gX0fV1e5lqjGk3b2O0S7iH8wq0sQ8P6aQm3c9q1X0a7yVYdL7jWcS5u8t2N6w1yZr4kQ0./:19000:0:99999:7:::
nobody:*:19000:0:99999:7:::
"""
GSHADOW = """\
root:*::
daemon:*::
sudo:*::pi
video:*::pi
shadow:*::
gpio:!::pi
systemd-network:!*::
messagebus:!::
pi:!::
nogroup:*::
"""
USERCONFIG_UNIT = """\
[Unit]
Description=User configuration dialog (stand-in)
[Service]
Type=oneshot
ExecStart=/bin/true
[Install]
WantedBy=multi-user.target
"""
CONFIG_TXT = """\
# For more options and information see http://rptl.io/configtxt
dtparam=audio=on
camera_auto_detect=1
display_auto_detect=1
auto_initramfs=1
arm_64bit=1

[cm4]
otg_mode=1

[all]
"""


def elf_header(machine: int) -> bytes:
    """The first 64 bytes of a 64-bit little-endian ELF executable for ``machine`` (0xB7 = aarch64)."""
    h = bytearray(64)
    h[:4] = b"\x7fELF"
    h[4], h[5], h[6] = 2, 1, 1
    h[16:18] = (2).to_bytes(2, "little")  # ET_EXEC
    h[18:20] = machine.to_bytes(2, "little")
    h[20:24] = (1).to_bytes(4, "little")
    return bytes(h)


def _stage_root(root: Path, codename: str, python: str, machine: int, filler_mib: int) -> None:
    version_id = {"bookworm": "12", "trixie": "13"}.get(codename, "99")
    files = {
        "usr/lib/os-release": f'PRETTY_NAME="Debian GNU/Linux {version_id} ({codename})"\nNAME="Debian GNU/Linux"\n'
                              f'VERSION_ID="{version_id}"\nVERSION_CODENAME={codename}\nID=debian\n',
        "etc/passwd": PASSWD, "etc/group": GROUP, "etc/shadow": SHADOW, "etc/gshadow": GSHADOW,
        "etc/hostname": "raspberrypi\n",
        "etc/hosts": "127.0.0.1\tlocalhost\n127.0.1.1\traspberrypi\n",
        "usr/lib/systemd/system/userconfig.service": USERCONFIG_UNIT,
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    for d in ("etc/systemd/system/multi-user.target.wants", "etc/ssh/sshd_config.d", "usr/lib/aarch64-linux-gnu",
              "boot/firmware", "var/lib", "var/cache", "home/pi", "opt"):
        (root / d).mkdir(parents=True, exist_ok=True)
    os.symlink("../usr/lib/os-release", root / "etc/os-release")
    os.symlink("/usr/lib/systemd/system/userconfig.service", root / "etc/systemd/system/multi-user.target.wants/userconfig.service")
    (root / "usr/bin").mkdir(parents=True, exist_ok=True)
    (root / f"usr/bin/python{python}").write_bytes(elf_header(machine) + b"\0" * 4032)
    if filler_mib:
        (root / "var/cache/filler.bin").write_bytes(b"maskgate-filler:" * (filler_mib * MiB // 16))


def make_base_image(path: Path, *, codename: str = "bookworm", python: str = "3.11", machine: int = 0xB7,
                    boot_mib: int = 40, root_mib: int = 16, filler_mib: int = 8, userconf: bool = True) -> Path:
    """A stand-in Raspberry Pi OS Lite image at ``path`` (MBR, FAT32 bootfs, ext4 rootfs)."""
    work = path.parent / f".{path.name}.parts"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    stage = work / "root"
    stage.mkdir()
    _stage_root(stage, codename, python, machine, filler_mib)

    # ext4 root, populated from the staging folder; then owners fixed (mke2fs -d copies the stager's uid).
    rootfs = work / "root.ext4"
    run("mkfs.ext4", "-q", "-F", "-b", "4096", "-L", "rootfs", "-E", "root_owner=0:0", "-d", stage, rootfs, f"{root_mib}M")
    cmds = []
    for p in sorted(stage.rglob("*")):
        rel = "/" + p.relative_to(stage).as_posix()
        cmds += [f'sif "{rel}" uid 0', f'sif "{rel}" gid 0']
    for rel in ("/etc/shadow", "/etc/gshadow"):
        cmds += [f'sif "{rel}" gid 42', f'sif "{rel}" mode 0100640']
    cmds += ['sif "/home/pi" uid 1000', 'sif "/home/pi" gid 1000']
    script = work / "owners.cmds"
    script.write_text("\n".join(cmds) + "\n")
    run("debugfs", "-w", "-f", script, rootfs)

    # FAT32 boot
    bootfs = work / "boot.vfat"
    with open(bootfs, "wb") as f:
        f.truncate(boot_mib * MiB)
    run("mkfs.vfat", "-F", "32", "-n", "bootfs", "-i", "4d41534b", bootfs)
    files = {
        "config.txt": CONFIG_TXT,
        "cmdline.txt": f"console=serial0,115200 console=tty1 root=PARTUUID={DISK_ID[2:]}-02 rootfstype=ext4 fsck.repair=yes rootwait\n",
    }
    if userconf:
        files["userconf.txt"] = "pi:$6$standin$notarealhashbutadefaultpasswordnonetheless\n"
        files["ssh"] = ""
    for name, text in files.items():
        src = work / name
        src.write_text(text)
        run("mcopy", "-i", bootfs, src, f"::/{name}")

    # the disk: MBR, boot at 4 MiB, root right after
    boot_start = ALIGN // SECTOR
    root_start = boot_start + boot_mib * MiB // SECTOR
    total = root_start * SECTOR + root_mib * MiB
    with open(path, "wb") as f:
        f.truncate(total)
    table = (f"label: dos\nlabel-id: {DISK_ID}\nunit: sectors\n"
             f"start={boot_start}, size={boot_mib * MiB // SECTOR}, type=c\n"
             f"start={root_start}, size={root_mib * MiB // SECTOR}, type=83\n")
    run("sfdisk", "-q", path, input=table.encode())
    with open(path, "r+b") as disk:
        for part, start in ((bootfs, boot_start), (rootfs, root_start)):
            with open(part, "rb") as src:
                disk.seek(start * SECTOR)
                shutil.copyfileobj(src, disk, 4 * MiB)
    shutil.rmtree(work)
    return path


# ---------------------------------------------------------------------------------------------- #
# Wheels


def make_wheel(folder: Path, name: str, version: str = "1.0", *, requires: tuple[str, ...] = (),
               module_text: str = "VALUE = 42\n", tag: str = "py3-none-any", requires_python: str = "") -> Path:
    """A minimal, valid pure-Python wheel (one module named like the project)."""
    folder.mkdir(parents=True, exist_ok=True)
    mod = name.replace("-", "_")
    dist = f"{mod}-{version}.dist-info"
    files = {
        f"{mod}/__init__.py": module_text.encode(),
        f"{dist}/METADATA": ("Metadata-Version: 2.1\n" f"Name: {name}\nVersion: {version}\n"
                             + (f"Requires-Python: {requires_python}\n" if requires_python else "")
                             + "".join(f"Requires-Dist: {r}\n" for r in requires)).encode(),
        f"{dist}/WHEEL": f"Wheel-Version: 1.0\nGenerator: maskgate-tests\nRoot-Is-Purelib: true\nTag: {tag}\n".encode(),
    }
    record = []
    for fname, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{fname},sha256={digest},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    path = folder / f"{mod}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for fname, data in files.items():
            info = zipfile.ZipInfo(fname, date_time=(2024, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            z.writestr(info, data)
    return path


# ---------------------------------------------------------------------------------------------- #
# Looking into images without mounting them


def partitions(image: Path) -> list[dict]:
    import json

    return json.loads(run("sfdisk", "--json", image).stdout)["partitiontable"]["partitions"]


def part_offsets(image: Path) -> tuple[int, int, int]:
    """(boot offset, root offset, root size) in bytes."""
    parts = partitions(image)
    return parts[0]["start"] * SECTOR, parts[1]["start"] * SECTOR, parts[1]["size"] * SECTOR


def root_spec(image: Path) -> str:
    return f"{image}?offset={part_offsets(image)[1]}"


def debugfs(image: Path, request: str) -> str:
    return run("debugfs", "-R", request, root_spec(image)).stdout.decode("utf-8", "replace")


def ext4_stat(image: Path, path: str) -> dict | None:
    """Type, mode, uid, gid, size and link target of ``path`` in the root file system (no following)."""
    import re

    out = debugfs(image, f'stat "{path}"')
    if "Inode:" not in out:
        return None
    m = re.search(r"Type:\s*(\S+)\s+Mode:\s*([0-7]+)", out)
    o = re.search(r"User:\s*(\d+)\s+Group:\s*(\d+)", out)
    s = re.search(r"Size:\s*(\d+)", out)
    link = re.search(r'Fast link dest:\s*"(.*)"', out)
    return {"type": m.group(1), "mode": int(m.group(2), 8), "uid": int(o.group(1)), "gid": int(o.group(2)),
            "size": int(s.group(1)), "target": link.group(1) if link else None}


def ext4_read(image: Path, path: str, tmp: Path) -> bytes:
    dest = tmp / f"dump-{hashlib.sha1(path.encode()).hexdigest()[:8]}"
    run("debugfs", "-R", f'dump "{path}" "{dest}"', root_spec(image))
    data = dest.read_bytes()
    dest.unlink()
    return data


def fat_read(image: Path, path: str) -> bytes | None:
    proc = run("mcopy", "-n", "-i", f"{image}@@{part_offsets(image)[0]}", f"::{path}", "-", ok=(0, 1))
    return proc.stdout if proc.returncode == 0 else None


def fat_names(image: Path, folder: str = "/") -> list[str]:
    proc = run("mdir", "-b", "-i", f"{image}@@{part_offsets(image)[0]}", f"::{folder.rstrip('/')}/", ok=(0, 1))
    prefix = f"::{folder.rstrip('/')}/"
    return sorted(ln.strip()[len(prefix):] for ln in proc.stdout.decode().splitlines() if ln.strip().startswith(prefix) and ln.strip() != prefix)


def fsck_root(image: Path) -> subprocess.CompletedProcess:
    return run("e2fsck", "-f", "-n", root_spec(image), ok=range(256))


def fsck_boot(image: Path, tmp: Path) -> subprocess.CompletedProcess:
    """fsck.vfat (read-only) on a copy of the boot partition: it takes no offset."""
    parts = partitions(image)
    start, size = parts[0]["start"] * SECTOR, parts[0]["size"] * SECTOR
    copy = tmp / "boot-copy.vfat"
    with open(image, "rb") as src, open(copy, "wb") as dst:
        src.seek(start)
        dst.write(src.read(size))
    proc = run("fsck.vfat", "-n", copy, ok=range(256))
    copy.unlink()
    return proc


# ---------------------------------------------------------------------------------------------- #
# Running the card's first boot in a chroot of this machine's architecture


def extract_card(card: Path, dest: Path) -> Path:
    """The card's root file system (owners and modes kept) with its boot partition at /boot/firmware."""
    boot_off, root_off, _ = part_offsets(card)
    dest.mkdir(parents=True)
    run("debugfs", "-R", f'rdump / "{dest}"', f"{card}?offset={root_off}")
    firmware = dest / "boot" / "firmware"
    firmware.mkdir(parents=True, exist_ok=True)
    run("mcopy", "-s", "-n", "-i", f"{card}@@{boot_off}", "::/*", firmware)
    return dest


def site_closure(names: list[str]) -> list[str]:
    """Top-level entries (packages, .libs, .dist-info) of these distributions and everything they require,
    as installed in the running Python (the project's venv)."""
    import importlib.metadata as md
    import re

    seen: set[str] = set()
    todo = list(names)
    entries: set[str] = set()
    while todo:
        name = todo.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:  # a requirement for another Python or platform
            continue
        for f in dist.files or []:
            top = f.parts[0]
            if top not in ("..", "bin", "__pycache__") and not top.endswith(".pth"):
                entries.add(top)
        for req in dist.requires or []:
            if re.search(r"\bextra\s*==", req):
                continue
            todo.append(re.match(r"\s*([A-Za-z0-9._-]+)", req).group(1))
    return sorted(entries)


def run_firstboot(root: Path, site_packages: Path, provided: list[str], *, script: str = "/opt/maskgate/firstboot.sh") -> subprocess.CompletedProcess:
    """Run the card's first-boot script as root in a chroot made of ``root`` (the card's files) and this
    machine's /usr, in private mount and network namespaces: no network, nothing mounted outside.

    ``provided`` are top-level entries of ``site_packages`` (see :func:`site_closure`) that the chroot's
    OS offers as system packages, the way Raspberry Pi OS offers picamera2 to the venv.
    """
    for link, target in (("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib"), ("lib64", "usr/lib64")):
        if not (root / link).exists() and not (root / link).is_symlink() and Path("/" + link).exists():
            os.symlink(target, root / link)
    for d in ("proc", "dev", "tmp", "run", "sitepkgs", "usr"):
        (root / d).mkdir(exist_ok=True)
    os.chmod(root / "tmp", 0o1777)
    for f in ("ld.so.cache", "nsswitch.conf", "login.defs"):
        if Path("/etc", f).exists() and not (root / "etc" / f).exists():
            shutil.copy2(Path("/etc", f), root / "etc" / f)
    shim = root.parent / f"{root.name}-dist-packages"
    shutil.rmtree(shim, ignore_errors=True)
    shim.mkdir()
    for entry in provided:
        os.symlink(f"/sitepkgs/{entry}", shim / entry)
    dist = "/usr/lib/python3/dist-packages"
    setup = " && ".join([
        "mount --make-rprivate /",
        f"mount --rbind /usr {root}/usr", f"mount -o remount,bind,ro {root}/usr",
        f"mount --bind {shim} {root}{dist}",
        f"mount --bind {site_packages} {root}/sitepkgs",
        f"mount --rbind /dev {root}/dev",
        f"mount -t proc proc {root}/proc",
        f"exec chroot {root} /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 {script}",
    ])
    return subprocess.run(["unshare", "--mount", "--net", "--fork", "--", "sh", "-c", setup],
                          capture_output=True, text=True, timeout=600)
