"""``maskgate image build``: a Raspberry Pi OS Lite image with the gate installed, without mounting it.

The steps, in order (each one a function below):

1. copy the base (``.img`` or ``.img.xz``) to a sparse working file next to OUT;
2. read its partition table and find out which release, Python and CPU the root file system has;
3. gather the payload: the project's wheel, the wheelhouse for that Python and CPU, unit files,
   scripts, the default config; check the wheelhouse installs offline;
4. grow the image and the root partition if the payload does not fit;
5. add the ``maskgate`` system user (and ``gpio``/``video`` membership) to the image's user database,
   lock every password, write the payload with owners and modes, enable the units;
6. edit the FAT boot partition: drop files that would create passwords, add the lock pin's
   power-on state to config.txt and a README for the settings folder;
7. fsck, write the in-image manifest, the bmap and OUT.manifest.json, and rename the result to OUT.

Timestamps come from ``SOURCE_DATE_EPOCH`` (or the base image's own os-release), so the same inputs
give the same image, byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from maskgate.deploy import accounts, bmap, configtxt, imagefile, layout, partitions, targets, tools, wheelhouse
from maskgate.deploy.ext4 import Batch, Ext4
from maskgate.deploy.fat import Fat, used_ranges as fat_used_ranges
from maskgate.errors import DeployError

log = logging.getLogger(__name__)

MiB = 1 << 20
TOOLS = ("sfdisk", "mcopy", "mdir", "mmd", "mdeltree", "debugfs", "dumpe2fs", "e2fsck", "resize2fs")


@dataclass
class BuildOptions:
    base: Path
    out: Path
    config: Path | None = None
    wheelhouse: Path | None = None  # pre-made folder of dependency wheels (else: pip download, cached)
    wheel: Path | None = None  # pre-built maskgate wheel (else: built from this source tree)
    extras: list[str] | None = None  # requirements installed beside maskgate (None: the release's default)
    allow_missing_deps: bool = False
    allow_missing_models: bool = False
    refresh_wheelhouse: bool = False
    reserve: int = 128 * MiB  # free space left in the root file system after the payload
    epoch: int | None = None


@dataclass
class _Payload:
    batch: Batch
    sources: dict[str, str] = field(default_factory=dict)  # image path -> sha256 of what was written
    nbytes: int = 0
    nfiles: int = 0


def build(opts: BuildOptions) -> dict:
    """Build OUT from BASE; return the manifest (also written as OUT.manifest.json)."""
    tools.require(*TOOLS)
    base, out = Path(opts.base), Path(opts.out)
    if not base.is_file():
        raise DeployError(f"base image not found: {base}")
    if not out.parent.is_dir():
        raise DeployError(f"output folder {out.parent} does not exist")
    if out.exists() and out.resolve() == base.resolve():
        raise DeployError("--out must not be the base image itself")
    defaults_text = _read_defaults(opts.config)

    work = out.with_name(f".{out.name}.partial")
    bmap_path, bmap_work = Path(f"{out}.bmap"), out.with_name(f".{out.name}.bmap.partial")
    try:
        with tempfile.TemporaryDirectory(prefix="maskgate-build-") as stage:
            manifest = _build(opts, base, work, Path(stage), defaults_text)
        bmap.write(manifest.pop("_bmap"), bmap_work)
        manifest["image"] = {"file": out.name, "size": work.stat().st_size, "sha256": imagefile.sha256_file(work)}
        os.replace(work, out)
        os.replace(bmap_work, bmap_path)
    except BaseException as exc:
        work.unlink(missing_ok=True)
        bmap_work.unlink(missing_ok=True)
        if isinstance(exc, DeployError) and str(work) in str(exc):
            # the user knows the base image, not our working copy of it
            raise type(exc)(str(exc).replace(str(work), f"{base.name} (working copy)")) from None
        raise
    finally:
        tools.set_epoch(None)
    Path(f"{out}.manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    log.info("built %s (%d MiB), %s, %s.manifest.json", out, manifest["image"]["size"] // MiB, bmap_path.name, out.name)
    return manifest


def _read_defaults(path: Path | None) -> str:
    from maskgate.edge import config

    if path is None:
        text = layout.DEFAULT_CONFIG_TEXT
        with tempfile.NamedTemporaryFile("w", suffix=".toml") as f:
            f.write(text)
            f.flush()
            config.load([f.name])
        return text
    config.load([path])  # ConfigError names the key
    return Path(path).read_text(encoding="utf-8")


def _build(opts: BuildOptions, base: Path, work: Path, stage: Path, defaults_text: str) -> dict:
    # 1. the working copy
    log.info("copying %s", base)
    base_sha, _ = imagefile.copy_base(base, work, progress_label=f"copying {base.name}")
    table = partitions.read(work)
    boot_part, root_part = table.boot, table.root
    root = Ext4(work, root_part.offset)
    info = root.info()

    # 2. what the base is
    target, os_release = detect_target(root)
    if root.exists(layout.PREFIX):
        raise DeployError(f"{base} already has {layout.PREFIX}: start from the stock Raspberry Pi OS image")
    epoch = opts.epoch if opts.epoch is not None else _default_epoch(root)
    tools.set_epoch(epoch)
    log.info("base: %s (%s, Python %s, %s)", os_release.get("PRETTY_NAME", target.codename), target.codename, target.python, target.arch)

    # 3. the payload
    wheels, wheel_info = _gather_wheels(opts, target, stage, epoch)
    from maskgate.edge import config

    defaults_path = stage / "config.toml"
    defaults_path.write_text(defaults_text, encoding="utf-8")
    defaults = config.load([defaults_path])

    # the service user first: its ids own part of the payload
    users, uid, gid, locked = _users(root)

    payload = _payload(stage, wheels, wheel_info, defaults_text, users, uid, gid)
    masked = [u for u in layout.MASKED_UNITS if any(root.exists(f"{d}/{u}") for d in layout.UNIT_SEARCH)]

    # 4. room: for the payload, for what first boot installs from the wheelhouse into the venv, and the reserve
    venv_bytes, venv_files = wheelhouse.installed_size(wheels, info["block_size"])
    grown = _make_room(work, table, root, info, payload.nbytes + venv_bytes, payload.nfiles + venv_files, opts.reserve)
    if grown:
        table = partitions.read(work)
        root_part = table.root

    # 5. write
    for unit in masked:
        payload.batch.symlink(f"{layout.UNIT_DIR}/{unit}", "/dev/null")
    root.apply(payload.batch)

    # 6. boot partition
    fat = Fat(work, boot_part.offset)
    removed = [name for name in layout.BOOT_REMOVE if fat.remove(f"/{name}")]
    fat.write(f"{layout.BOOT_SETTINGS}/README.txt", layout.package_file("README-boot.txt"))
    if fat.exists("/config.txt"):
        text = fat.read("/config.txt").decode("utf-8", "surrogateescape")
        block = configtxt.lock_pin_block(defaults.gpio.lock_pin, defaults.gpio.lock_active_high)
        fat.write("/config.txt", configtxt.set_block(text, block).encode("utf-8", "surrogateescape"))
    else:
        log.warning("the boot partition has no config.txt; the lock pin's power-on state is left to the firmware")

    # 7. manifest, checks, bmap
    manifest = {
        "format": 1,
        "maskgate_version": wheel_info["maskgate_version"],
        "source_date_epoch": epoch,
        "base": {"file": base.name, "sha256": base_sha, "os": os_release.get("PRETTY_NAME", ""),
                 "codename": target.codename, "python": target.python, "arch": target.arch},
        "partitions": table.describe(),
        "grown_root_bytes": grown,
        "first_boot_install": {"bytes": venv_bytes, "files": venv_files},
        "service_user": {"name": layout.USER, "uid": uid, "gid": gid, "groups": list(layout.USER_GROUPS)},
        "locked_accounts": locked,
        "masked_units": masked,
        "enabled_units": list(layout.UNITS),
        "removed_from_boot": removed,
        "wheelhouse": {k: v for k, v in wheel_info.items() if k != "maskgate_version"},
        "files": _describe(root, payload),  # read back from the image
        "boot_files": {p: hashlib.sha256(d).hexdigest() for p, d in sorted(fat.tree(layout.BOOT_SETTINGS).items())},
    }
    payload.batch.close()
    with Batch() as b:
        b.write_bytes(layout.BUILD_MANIFEST, (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode(), 0o644)
        root.apply(b)
    root.check()
    manifest["_bmap"] = bmap.create(work, _used_ranges(work, table))
    return manifest


# ---------------------------------------------------------------------------------------------- #


def detect_target(root: Ext4) -> tuple[targets.Target, dict[str, str]]:
    """The release (and so the Python) of the root file system, checked against what is really there."""
    os_release_path = _resolve(root, "/etc/os-release") or _resolve(root, "/usr/lib/os-release")
    if os_release_path is None:
        raise DeployError(f"{root.path}: the root file system has no /etc/os-release (not a Raspberry Pi OS image?)")
    os_release = targets.parse_os_release(root.read(os_release_path).decode("utf-8", "replace"))
    target = targets.for_codename(os_release.get("VERSION_CODENAME", ""))
    python = _resolve(root, f"/usr/bin/python{target.python}")
    if python is None:
        raise DeployError(f"{root.path}: {target.codename} image without /usr/bin/python{target.python}")
    header = _read_head(root, python)
    arch = targets.elf_machine(header)
    if arch != target.arch:
        raise DeployError(f"{root.path}: the base image is for {arch}; maskgate needs Raspberry Pi OS Lite (64-bit, {target.arch})")
    return target, os_release


def _resolve(root: Ext4, path: str, hops: int = 8) -> str | None:
    """Follow symlinks of the last path component; None if nothing is there."""
    for _ in range(hops):
        inode = root.stat(path)
        if inode is None:
            return None
        if inode.kind != "symlink":
            return path
        if inode.target is None:
            return None
        path = os.path.normpath(os.path.join(os.path.dirname(path), inode.target))
    return None


def _read_head(root: Ext4, path: str) -> bytes:
    return root.read(path)[:64]


#: 1980-01-02: FAT and zip cannot store anything older
MIN_EPOCH = 315_619_200


def _default_epoch(root: Ext4) -> int:
    """SOURCE_DATE_EPOCH, else the modification time of the base's os-release (the same for the same base)."""
    env = os.environ.get("SOURCE_DATE_EPOCH")
    if env:
        try:
            epoch = int(env)
        except ValueError:
            raise DeployError(f"SOURCE_DATE_EPOCH={env!r} is not a number of seconds") from None
        if epoch < MIN_EPOCH:
            raise DeployError(f"SOURCE_DATE_EPOCH={env} is before 1980, which FAT and zip files cannot store")
        return epoch
    out = root.debugfs(['stat "/etc/os-release"'], what=f"reading the date of {root.path}")
    m = re.search(r"mtime:\s*0x([0-9a-f]+)", out)
    return max(int(m.group(1), 16) if m else 0, MIN_EPOCH)


def _gather_wheels(opts: BuildOptions, target: targets.Target, stage: Path, epoch: int) -> tuple[list[Path], dict]:
    own = stage / "own"
    project = Path(opts.wheel) if opts.wheel else wheelhouse.build_project_wheel(own, epoch)
    if not project.is_file():
        raise DeployError(f"wheel not found: {project}")
    name = wheelhouse.parse_wheel_name(project.name)
    if name.name != "maskgate":
        raise DeployError(f"{project.name} is not a maskgate wheel")
    models = wheelhouse.packaged_models(project)
    if not models and not opts.allow_missing_models:
        raise DeployError(f"{project.name} has no maskgate/models/*.tflite: the gate cannot run without its models "
                          "(commit them, or pass --allow-missing-models for a test image)")
    deps = wheelhouse.requirements(project)
    extras = list(target.extras if opts.extras is None else opts.extras)
    if opts.wheelhouse:
        dep_dir, source = Path(opts.wheelhouse), "given"
    else:
        dep_dir, source = wheelhouse.download(target, deps + extras, refresh=opts.refresh_wheelhouse), "pip download"
    dep_wheels = [w for w in wheelhouse.wheels_in(dep_dir) if wheelhouse.parse_wheel_name(w.name).name != "maskgate"]
    wheels = [project, *dep_wheels]
    wheelhouse.check_wheels(wheels, target)
    names = [w.name for w in wheels]
    if len(set(names)) != len(names):
        raise DeployError("the wheelhouse has two wheels with the same file name")

    requirements_txt = "".join(f"{r}\n" for r in [f"maskgate=={name.version}", *extras])
    view = stage / "wheelhouse"
    view.mkdir()
    for w in wheels:
        os.symlink(w.resolve(), view / w.name)
    (view / "requirements.txt").write_text(requirements_txt)
    problem = wheelhouse.offline_check(view, target, view / "requirements.txt")
    if problem and not opts.allow_missing_deps:
        raise DeployError(f"the wheelhouse cannot install maskgate offline on {target.key}: {problem} "
                          "(pass --allow-missing-deps if the OS provides the rest)")
    if problem:
        log.warning("the wheelhouse alone cannot install maskgate (%s); first boot relies on the OS for the rest", problem)
    info = {
        "source": source,
        "wheels": {w.name: imagefile.sha256_file(w) for w in sorted(wheels, key=lambda p: p.name)},
        "requirements": requirements_txt.splitlines(),
        "constraints": list(target.constraints),
        "offline_check": "ok" if problem is None else f"incomplete: {problem}",
        "models": models,
        "maskgate_version": name.version,
    }
    return [view / w.name for w in sorted(wheels, key=lambda p: p.name)] + [view / "requirements.txt"], info


def _users(root: Ext4):
    files = {}
    for name in ("passwd", "group", "shadow", "gshadow"):
        path = f"/etc/{name}"
        inode = root.stat(path)
        if inode is None:
            if name == "gshadow":
                continue
            raise DeployError(f"{root.path}: the root file system has no {path}")
        files[name] = (inode, root.read(path).decode("utf-8"))
    db = accounts.UserDb(files["passwd"][1], files["group"][1], files["shadow"][1],
                         files["gshadow"][1] if "gshadow" in files else None)
    uid, gid = db.ensure_system_user(layout.USER, home=layout.STATE, comment="maskgate door gate")
    for group in layout.USER_GROUPS:
        db.ensure_group(group)
        db.add_member(group, layout.USER)
    locked = db.lock_passwords()
    if locked:
        log.info("locked the passwords of: %s", ", ".join(locked))
    new = {"passwd": db.passwd, "group": db.group, "shadow": db.shadow, "gshadow": db.gshadow}
    users = {name: (inode, new[name]) for name, (inode, _) in files.items()}
    return users, uid, gid, locked


def _payload(stage: Path, wheels: list[Path], wheel_info: dict, defaults_text: str, users, uid: int, gid: int) -> _Payload:
    p = _Payload(Batch())
    b = p.batch

    def add_bytes(path: str, data: bytes, mode: int, owner=(0, 0)):
        b.write_bytes(path, data, mode, *owner)
        p.sources[path] = hashlib.sha256(data).hexdigest()
        p.nbytes += len(data)
        p.nfiles += 1

    def add_file(path: str, src: Path, mode: int):
        b.write(path, src, mode)
        p.sources[path] = wheel_info["wheels"].get(src.name) or imagefile.sha256_file(src)
        p.nbytes += src.stat().st_size
        p.nfiles += 1

    for name, (inode, text) in users.items():
        add_bytes(f"/etc/{name}", text.encode("utf-8"), inode.mode, (inode.uid, inode.gid))
    b.mkdir("/opt", 0o755)
    b.mkdir(layout.PREFIX, 0o755)
    b.mkdir(layout.WHEELHOUSE, 0o755)
    for w in wheels:
        add_file(f"{layout.WHEELHOUSE}/{w.name}", w, 0o644)
    add_bytes(layout.FIRSTBOOT, layout.package_file("firstboot.sh"), 0o755)
    add_bytes(layout.OS_PACKAGES, layout.package_file("install-os-packages.sh"), 0o755)
    add_bytes(f"{layout.PREFIX}/README.txt", layout.package_file("README-device.txt"), 0o644)
    b.mkdir(layout.ETC, 0o750, 0, gid)
    add_bytes(layout.DEFAULT_CONFIG, defaults_text.encode("utf-8"), 0o640, (0, gid))
    b.mkdir(layout.SECRETS, 0o750, 0, gid)
    b.mkdir("/var/lib", 0o755)
    b.mkdir(layout.STATE, 0o750, uid, gid)
    b.mkdir("/etc/ssh", 0o755)
    b.mkdir("/etc/ssh/sshd_config.d", 0o755)
    add_bytes(layout.SSHD_DROPIN, layout.package_file("sshd-maskgate.conf"), 0o644)
    b.mkdir(layout.UNIT_DIR, 0o755)
    b.mkdir(layout.WANTS, 0o755)
    for unit in layout.UNITS:
        add_bytes(f"{layout.UNIT_DIR}/{unit}", layout.package_file(unit), 0o644)
        b.symlink(f"{layout.WANTS}/{unit}", f"{layout.UNIT_DIR}/{unit}")
    return p


def _make_room(work: Path, table: partitions.PartitionTable, root: Ext4, info: dict, nbytes: int, nfiles: int, reserve: int) -> int:
    """Grow the root partition and file system if the payload and the reserve do not fit; return bytes added."""
    bs = info["block_size"]
    need = nbytes + nfiles * bs + 64 * bs + reserve  # every file may waste up to a block, folders and metadata
    free = info["free_blocks"] * bs
    if info["free_inodes"] < nfiles + 64:
        log.info("only %d free inodes in the root file system: growing it adds more", info["free_inodes"])
    if need <= free and info["free_inodes"] >= nfiles + 64:
        return 0
    add = max(need - free, 16 * MiB)
    add = (add + 4 * MiB - 1) // (4 * MiB) * (4 * MiB)
    root_part = table.root
    if root_part.number != table.last.number:
        raise DeployError(f"{table.path}: the root partition is not the last one, so it cannot grow to fit the payload")
    fs_bytes = info["block_count"] * bs
    new_part_bytes = max(root_part.nbytes, fs_bytes) + add
    new_size = root_part.offset + new_part_bytes
    log.info("growing the root file system by %d MiB to make room for the payload", add // MiB)
    # resize2fs on "image?offset=N" truncates the image file to the file system's size, cutting off its
    # end; so the root file system is grown as a file of its own and copied back.
    alone = work.with_name(work.name + ".root")
    try:
        alone.touch()
        os.truncate(alone, new_part_bytes)
        imagefile.copy_range(work, alone, root_part.nbytes, src_offset=root_part.offset)
        Ext4(alone).resize(new_part_bytes)
        if Ext4(alone).info()["block_count"] <= info["block_count"]:
            raise DeployError(f"{work}: the root file system did not grow")
        imagefile.grow(work, new_size)
        imagefile.copy_range(alone, work, new_part_bytes, dst_offset=root_part.offset, sparse_from=root_part.nbytes)
    finally:
        alone.unlink(missing_ok=True)
    partitions.grow_last(work, table, new_part_bytes // table.sector_size)
    return add


def _describe(root: Ext4, payload: _Payload) -> list[dict]:
    """What is now in the image at each path the build wrote, read back from the image."""
    rows = []
    for op in payload.batch.ops:
        inode = root.stat(op.path)
        if inode is None:
            raise DeployError(f"{root.path}: {op.path} is missing after writing it")
        row = {"path": op.path, "type": inode.kind, "mode": f"{inode.mode:04o}", "uid": inode.uid, "gid": inode.gid}
        if inode.kind == "file":
            row["size"] = inode.size
            row["sha256"] = payload.sources[op.path]
            expected = Path(op.source).stat().st_size
            if inode.size != expected:
                raise DeployError(f"{root.path}: {op.path} has {inode.size} bytes in the image, expected {expected}")
        elif inode.kind == "symlink":
            row["target"] = inode.target
        rows.append(row)
    return sorted(rows, key=lambda r: r["path"])


def _used_ranges(image: Path, table: partitions.PartitionTable) -> list[tuple[int, int]]:
    """Byte ranges the bmap must cover: the partition table area, used FAT and ext4 blocks, other partitions whole."""
    first = min(p.offset for p in table.partitions)
    ranges = [(0, first)]
    boot, root = table.boot, table.root
    for p in table.partitions:
        if p.number == boot.number:
            ranges += fat_used_ranges(image, p.offset, p.nbytes)
        elif p.number == root.number:
            ranges += Ext4(image, p.offset).used_ranges(p.nbytes)
        else:
            ranges.append((p.offset, p.end))
    return ranges


__all__ = ["BuildOptions", "build", "detect_target"]
