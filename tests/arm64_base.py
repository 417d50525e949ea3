"""A realistic arm64 base image for the emulated-Pi tests: Debian trixie made with mmdebstrap, in the
layout of Raspberry Pi OS Lite, cached under ~/.cache/maskgate/arm64-base/ (built once per machine).

What it has, as Raspberry Pi OS Lite (Trixie) ships it:

* an MBR disk: a FAT32 ``bootfs`` (config.txt, cmdline.txt with ``root=PARTUUID=...-02``, the kernel as
  ``kernel8.img`` and its initramfs as ``initramfs8``), mounted at ``/boot/firmware``, and an ext4
  ``rootfs``;
* systemd, udev, python3 (3.13) with venv, openssh-server (``ssh.service`` enabled), sudo;
* the first-user wizard's state: a user ``pi`` (uid 1000) with no usable password, in ``sudo``,
  ``video`` and ``gpio``; ``userconfig.service`` enabled in ``multi-user.target.wants``, which, like the
  real wizard, holds the boot on the console until someone answers (here: forever, so an image that
  did not mask it never reaches the gate); ``/etc/ssh/sshd_config.d/rename_user.conf``.

What differs, on purpose: the kernel is Debian's generic arm64 kernel (it boots on ``qemu-system-aarch64
-M virt``; the Pi's own does not), with an initramfs that holds the modules a virtio disk needs, and the
rootfs keeps only the kernel modules a VM uses.  There is no ``raspi-config``, no Pi firmware and no
picamera2: the gate runs from a replay source in the tests.

Needs root, mmdebstrap and qemu-user-static (binfmt_misc is registered here if it is not yet).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import deploy_helpers as h

MiB = 1 << 20
DISK_ID = "0x8a7c51e2"
BOOT_MIB = 256
SUITE = "trixie"
PACKAGES = ("systemd", "systemd-sysv", "udev", "dbus", "kmod", "e2fsprogs", "python3", "python3-venv",
            "openssh-server", "sudo", "linux-image-arm64", "initramfs-tools", "zstd")
#: the modules the VM needs: in the initramfs (to mount the root) and kept in the rootfs
VM_MODULES = ("virtio_blk", "virtio_pci", "virtio_mmio", "virtio_console", "virtio_rng", "ext4", "vfat",
              "nls_cp437", "nls_ascii", "nls_iso8859_1")

CONFIG_TXT = h.CONFIG_TXT
USERCONFIG_UNIT = """\
[Unit]
Description=Raspberry Pi OS first-user wizard (stand-in): holds the boot until a user is created
Before=multi-user.target getty.target systemd-user-sessions.service
After=systemd-logind.service

[Service]
Type=oneshot
StandardOutput=tty
TTYPath=/dev/console
ExecStart=/bin/sh -c 'echo "userconfig: please enter new username:"; exec sleep infinity'

[Install]
WantedBy=multi-user.target
"""
RENAME_USER_CONF = "Banner /usr/share/userconf-pi/sshd_banner\n"
SSHD_BANNER = "Please note that SSH may not work until a valid user has been set up.\n"

# Run in the chroot (under qemu-user) after the packages are installed.
CUSTOMIZE = r"""
set -eu
echo raspberrypi > /etc/hostname
printf '127.0.0.1\tlocalhost\n127.0.1.1\traspberrypi\n' > /etc/hosts
getent group gpio >/dev/null || groupadd --system gpio
useradd --uid 1000 --user-group --create-home --shell /bin/bash --groups sudo,video,gpio pi
usermod -p '*' pi
usermod -p '*' root
systemctl enable userconfig.service ssh.service
systemctl mask systemd-firstboot.service
ln -sf /usr/share/zoneinfo/Etc/UTC /etc/localtime
echo Etc/UTC > /etc/timezone
printf 'PARTUUID=@ID@-01  /boot/firmware  vfat    defaults          0       2\nPARTUUID=@ID@-02  /               ext4    defaults,noatime  0       1\n' > /etc/fstab
mkdir -p /boot/firmware
"""


def recipe_key() -> str:
    """Changes when anything that goes into the base changes (so the cache is rebuilt)."""
    text = "\n".join([SUITE, DISK_ID, str(BOOT_MIB), *PACKAGES, *VM_MODULES, CONFIG_TXT, USERCONFIG_UNIT,
                      RENAME_USER_CONF, CUSTOMIZE, "v3"])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "maskgate" / "arm64-base"


def unavailable() -> str | None:
    """Why the arm64 base cannot be built or used here (None: it can)."""
    if os.geteuid() != 0:
        return "needs root (mmdebstrap into a folder, chroot)"
    missing = [t for t in ("mmdebstrap", "qemu-aarch64-static") if h.tool_path(t) is None]
    if missing:
        return f"missing tools {', '.join(missing)} (Debian packages: mmdebstrap qemu-user-static)"
    return binfmt_problem()


def binfmt_problem() -> str | None:
    """Register qemu-aarch64 with binfmt_misc if it is not yet; None when arm64 binaries run."""
    misc = Path("/proc/sys/fs/binfmt_misc")
    if not (misc / "register").exists():
        proc = subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(misc)], capture_output=True, text=True)
        if proc.returncode != 0:
            return f"cannot mount binfmt_misc: {proc.stderr.strip()}"
    if not (misc / "qemu-aarch64").exists():
        conf = Path("/usr/lib/binfmt.d/qemu-aarch64.conf")
        if not conf.is_file():
            return "qemu-user-static has no /usr/lib/binfmt.d/qemu-aarch64.conf"
        try:
            (misc / "register").write_text(conf.read_text().strip() + "\n")
        except OSError as exc:
            return f"cannot register qemu-aarch64 with binfmt_misc: {exc}"
    if "enabled" not in (misc / "qemu-aarch64").read_text():
        return "binfmt_misc has qemu-aarch64 disabled"
    return None


def ensure_base(log=print) -> Path:
    """The cached base image, built first if needed (a few minutes under emulation)."""
    folder = cache_dir()
    image = folder / f"{SUITE}-arm64-{recipe_key()}.img"
    if image.is_file():
        return image
    folder.mkdir(parents=True, exist_ok=True)
    work = folder / f".{image.name}.work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    t0 = time.monotonic()
    try:
        rootfs = work / "rootfs"
        _mmdebstrap(rootfs, work)
        log(f"arm64 base: root file system made in {time.monotonic() - t0:.0f} s")
        partial = work / "base.img"
        _assemble(rootfs, work, partial)
        os.replace(partial, image)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for old in folder.glob(f"{SUITE}-arm64-*.img"):
        if old != image:
            old.unlink()
    log(f"arm64 base: {image} ({image.stat().st_size // MiB} MiB) in {time.monotonic() - t0:.0f} s")
    return image


def _mmdebstrap(rootfs: Path, work: Path) -> None:
    files = work / "files"
    files.mkdir()
    (files / "userconfig.service").write_text(USERCONFIG_UNIT)
    (files / "customize.sh").write_text(CUSTOMIZE.replace("@ID@", DISK_ID[2:]))
    (files / "modules").write_text("".join(m + "\n" for m in VM_MODULES))
    essential = [
        # before the kernel's postinst makes the initramfs: only the modules listed (a VM's disk and fs)
        'mkdir -p "$1/etc/initramfs-tools/conf.d" "$1/usr/share/initramfs-tools/modules.d"',
        'echo MODULES=list > "$1/etc/initramfs-tools/conf.d/maskgate-vm.conf"',
        f'cp {files}/modules "$1/usr/share/initramfs-tools/modules.d/maskgate-vm"',
        # no documentation, man pages or translations: a smaller image, a faster install
        'mkdir -p "$1/etc/dpkg/dpkg.cfg.d"',
        'printf "path-exclude=/usr/share/doc/*\\npath-exclude=/usr/share/man/*\\npath-exclude=/usr/share/locale/*\\n'
        'path-include=/usr/share/locale/locale.alias\\n" > "$1/etc/dpkg/dpkg.cfg.d/excludes"',
    ]
    customize = [
        f'cp {files}/userconfig.service "$1/usr/lib/systemd/system/userconfig.service"',
        'mkdir -p "$1/etc/ssh/sshd_config.d" "$1/usr/share/userconf-pi"',
        f"printf '{RENAME_USER_CONF}' > \"$1/etc/ssh/sshd_config.d/rename_user.conf\"",
        f"printf '{SSHD_BANNER}' > \"$1/usr/share/userconf-pi/sshd_banner\"",
        f'cp {files}/customize.sh "$1/tmp/customize.sh"',
        'chroot "$1" sh /tmp/customize.sh',
        'rm -f "$1/tmp/customize.sh"',
    ]
    cmd = ["mmdebstrap", "--arch=arm64", "--variant=minbase", "--mode=root", "--format=directory",
           "--include=" + ",".join(PACKAGES), "--aptopt=APT::Install-Recommends \"false\"",
           *[f"--essential-hook={c}" for c in essential], *[f"--customize-hook={c}" for c in customize],
           SUITE, str(rootfs)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"mmdebstrap failed (exit {proc.returncode}): {proc.stderr[-3000:]}")


def _assemble(rootfs: Path, work: Path, out: Path) -> None:
    """The Raspberry Pi OS disk layout from the root folder: kernel and initramfs onto the FAT."""
    boot = work / "bootfiles"
    boot.mkdir()
    kernels = sorted((rootfs / "boot").glob("vmlinuz-*"))
    initrds = sorted((rootfs / "boot").glob("initrd.img-*"))
    if not kernels or not initrds:
        raise RuntimeError("the arm64 root file system has no /boot/vmlinuz-* and initrd.img-*")
    shutil.copyfile(kernels[-1], boot / "kernel8.img")
    shutil.copyfile(initrds[-1], boot / "initramfs8")
    (boot / "config.txt").write_text(CONFIG_TXT)
    (boot / "cmdline.txt").write_text(
        f"console=serial0,115200 console=tty1 root=PARTUUID={DISK_ID[2:]}-02 rootfstype=ext4 fsck.repair=yes rootwait\n")
    # the rootfs keeps the modules a VM uses (the real image has the Pi's modules, not Debian's)
    for moddir in (rootfs / "usr/lib/modules").iterdir():
        keep = set()
        for m in VM_MODULES:
            keep |= {p for p in (moddir / "kernel").rglob(f"{m}.ko*")}
        for p in list((moddir / "kernel").rglob("*.ko*")):
            if p not in keep and not any(x in p.parts for x in ("virtio", "fs", "crypto", "lib")):
                p.unlink()
        # this machine's depmod (kmod) reads arm64 modules as well, without emulation
        host = h.tool_path("depmod")
        cmd = [host, "-b", str(rootfs), moddir.name] if host else ["chroot", str(rootfs), "depmod", moddir.name]
        subprocess.run(cmd, check=True, capture_output=True)
    for p in (rootfs / "boot").glob("*"):
        if p.is_file():
            p.unlink()
    for d in ("tmp", "var/tmp"):
        for p in (rootfs / d).iterdir():
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()

    used = int(subprocess.run(["du", "-sxm", str(rootfs)], capture_output=True, text=True, check=True).stdout.split()[0])
    root_mib = int(used * 1.25) + 64
    rootimg = work / "root.ext4"
    h.run("mkfs.ext4", "-q", "-F", "-b", "4096", "-L", "rootfs", "-d", rootfs, rootimg, f"{root_mib}M")
    bootimg = work / "boot.vfat"
    with open(bootimg, "wb") as f:
        f.truncate(BOOT_MIB * MiB)
    h.run("mkfs.vfat", "-F", "32", "-n", "bootfs", "-i", "6d61736b", bootimg)
    for p in sorted(boot.iterdir()):
        h.run("mcopy", "-i", bootimg, p, f"::/{p.name}")

    start = h.ALIGN // h.SECTOR
    root_start = start + BOOT_MIB * MiB // h.SECTOR
    with open(out, "wb") as f:
        f.truncate(root_start * h.SECTOR + root_mib * MiB)
    table = (f"label: dos\nlabel-id: {DISK_ID}\nunit: sectors\n"
             f"start={start}, size={BOOT_MIB * MiB // h.SECTOR}, type=c\n"
             f"start={root_start}, size={root_mib * MiB // h.SECTOR}, type=83\n")
    h.run("sfdisk", "-q", out, input=table.encode())
    with open(out, "r+b") as disk:
        for part, offset in ((bootimg, start), (rootimg, root_start)):
            with open(part, "rb") as src:
                disk.seek(offset * h.SECTOR)
                while chunk := src.read(4 * MiB):
                    if chunk.count(0) == len(chunk):
                        disk.seek(len(chunk), os.SEEK_CUR)  # keep the image sparse
                    else:
                        disk.write(chunk)


if __name__ == "__main__":  # `python tests/arm64_base.py`: build (or find) the cached base
    import sys

    why = unavailable()
    if why:
        sys.exit(f"arm64 base: {why}")
    print(ensure_base())


def run_chroot(root: Path, argv: list[str], *, env: dict[str, str] | None = None, timeout: float = 1800) -> subprocess.CompletedProcess:
    """Run ``argv`` in a chroot of the card's own (arm64) files under qemu-user, as root, in private mount
    and network namespaces: no network, nothing mounted outside.  /proc, /dev, a fresh /run and /tmp."""
    for d in ("proc", "dev", "run", "tmp"):
        (root / d).mkdir(exist_ok=True)
    environment = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8",
                   "HOME": "/root", **(env or {})}
    setup = " && ".join([
        "mount --make-rprivate /",
        f"mount -t proc proc {root}/proc",
        f"mount --rbind /dev {root}/dev",
        f"mount -t tmpfs -o mode=0755 tmpfs {root}/run",
        f"mount -t tmpfs -o mode=1777 tmpfs {root}/tmp",
        'exec chroot "$0" /usr/bin/env -i "$@"',
    ])
    cmd = ["unshare", "--mount", "--net", "--fork", "--", "sh", "-c", setup, str(root),
           *[f"{k}={v}" for k, v in environment.items()], *argv]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
