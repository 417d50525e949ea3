"""The deploy side's pieces, one at a time, without disk images: user database edits, config.txt, TOML
writing, bmaps, wheel tags, device settings, the target safety rules (on a recorded sysfs tree), and the
unit files and scripts shipped into the image (systemd-analyze, bash -n)."""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from deploy_helpers import require_tools
from maskgate.deploy import accounts, bmap, configtxt, layout, provision, safety, targets, tomlw, wheelhouse
from maskgate.errors import ConfigError, DeployError, UnsafeTarget

FILES = Path(__file__).resolve().parent.parent / "deploy" / "files"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBx9q0hJ4m3sL5kPvFq1T3y7R8eW2nC6dZ0aXbYcQwE admin@laptop"


# ---------------------------------------------------------------------------------------------- #
# accounts


def _db():
    return accounts.UserDb(
        passwd="root:x:0:0:root:/root:/bin/bash\nsystemd-network:x:999:999::/:/usr/sbin/nologin\npi:x:1000:1000::/home/pi:/bin/bash\n",
        group="root:x:0:\nvideo:x:44:pi\nsystemd-network:x:999:\ngpio:x:998:pi\npi:x:1000:\n",
        shadow="root:*:19000:0:99999:7:::\npi:$y$j9T$abc$def:19000:0:99999:7:::\nguest::19000::::::\nsystemd-network:!*:19000::::::\n",
        gshadow="root:*::\nvideo:*::pi\n",
    )


def test_system_user_takes_the_highest_free_id_for_both_user_and_group():
    db = _db()
    uid, gid = db.ensure_system_user("maskgate", home="/var/lib/maskgate", comment="gate")
    assert (uid, gid) == (997, 997)  # 999 and 998 are taken (user / group ids alike)
    assert "maskgate:x:997:997:gate:/var/lib/maskgate:/usr/sbin/nologin" in db.passwd.splitlines()
    assert "maskgate:x:997:" in db.group.splitlines()
    assert "maskgate:*:::::::" in db.shadow.splitlines()
    assert "maskgate:!::" in db.gshadow.splitlines()
    assert db.ensure_system_user("maskgate", home="/x", comment="again") == (997, 997)  # idempotent
    assert [ln.split(":")[0] for ln in db.passwd.splitlines()].count("maskgate") == 1


def test_group_membership_in_group_and_gshadow():
    db = _db()
    db.ensure_system_user("maskgate", home="/var/lib/maskgate", comment="gate")
    for g in ("gpio", "video"):
        db.add_member(g, "maskgate")
        db.add_member(g, "maskgate")
    assert db.members("video") == ["pi", "maskgate"]
    assert db.members("gpio") == ["pi", "maskgate"]
    assert "video:*::pi,maskgate" in db.gshadow.splitlines()
    assert "gpio:!::maskgate" in db.gshadow.splitlines()  # missing from gshadow: added
    with pytest.raises(DeployError, match="'nope'"):
        db.add_member("nope", "maskgate")


def test_missing_group_is_created_as_system_group():
    db = _db()
    assert db.ensure_group("video") == 44
    gid = db.ensure_group("i2c")
    assert gid == 997 and "i2c:x:997:" in db.group


def test_every_usable_password_is_locked():
    db = _db()
    assert db.lock_passwords() == ["pi", "guest"]
    rows = {line.split(":")[0]: line.split(":")[1] for line in db.shadow.splitlines()}
    assert rows["pi"] == "!$y$j9T$abc$def"
    assert rows["guest"] == "*"  # empty meant: log in without a password
    assert rows["root"] == "*" and rows["systemd-network"] == "!*"
    assert db.lock_passwords() == []


# ---------------------------------------------------------------------------------------------- #
# config.txt, TOML


def test_config_txt_block_is_replaced_not_repeated():
    base = "dtparam=audio=on\n[cm4]\notg_mode=1\n"
    once = configtxt.set_block(base, configtxt.lock_pin_block(17, True))
    assert once.startswith(base)
    assert once.endswith("[all]\ngpio=17=op,dl\n# <<< maskgate\n")
    twice = configtxt.set_block(once, configtxt.lock_pin_block(5, False))
    assert twice.count(configtxt.BEGIN) == 1
    assert "gpio=5=op,dh" in twice and "gpio=17" not in twice
    assert configtxt.get_block(twice).splitlines()[2] == "gpio=5=op,dh"


def test_toml_writer_round_trips():
    data = {"device": {"name": 'Front "Door" \\ ü', "door_id": "d1"}, "policy": {"window": 5, "unlock_seconds": 2.5},
            "email": {"enabled": True, "recipients": ["a@example.org", "b@example.org"]}, "top": 1}
    text = tomlw.dumps(data, header="two\nlines")
    assert text.startswith("# two\n# lines\n")
    assert tomllib.loads(text) == data


# ---------------------------------------------------------------------------------------------- #
# bmap


def test_bmap_round_trip_and_checksums(tmp_path):
    img = tmp_path / "x.img"
    data = bytearray(40000)
    data[100:200] = b"a" * 100
    data[20000:20010] = b"b" * 10
    data[-5:] = b"tail!"
    img.write_bytes(bytes(data))
    bm = bmap.create(img, [(100, 200), (20000, 20010), (4096, 4097), (39999, 40000)])
    assert [(r.first, r.last) for r in bm.ranges] == [(0, 1), (4, 4), (9, 9)]
    assert bm.image_size == 40000 and bm.mapped_bytes == 2 * 4096 + 4096 + (40000 - 9 * 4096)
    path = tmp_path / "x.img.bmap"
    bmap.write(bm, path)
    assert bmap.load(path) == bm
    assert bmap.find_for(img) == path
    text = path.read_text()
    path.write_text(text.replace("<BlocksCount> 10 </BlocksCount>", "<BlocksCount> 11 </BlocksCount>"))
    with pytest.raises(DeployError, match="corrupt"):
        bmap.load(path)


def test_bmap_matches_bmaptool(tmp_path):
    """bmaptool accepts our bmap and copies exactly the mapped blocks."""
    require_tools("bmaptool")
    img = tmp_path / "y.img"
    img.write_bytes(os.urandom(3 * 4096) + bytes(5 * 4096) + os.urandom(100))
    bmap.write(bmap.create(img, [(0, 3 * 4096), (8 * 4096, 8 * 4096 + 100)]), tmp_path / "y.img.bmap")
    out = tmp_path / "copy.img"
    subprocess.run(["bmaptool", "copy", str(img), str(out)], check=True, capture_output=True)
    assert out.read_bytes() == img.read_bytes()


# ---------------------------------------------------------------------------------------------- #
# wheels and targets


@pytest.mark.parametrize("name,release,ok", [
    ("numpy-1.26.4-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl", "bookworm", True),
    ("numpy-1.26.4-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", "bookworm", False),
    ("numpy-2.2.0-cp313-cp313-manylinux_2_17_aarch64.whl", "bookworm", False),
    ("numpy-2.2.0-cp313-cp313-manylinux_2_17_aarch64.whl", "trixie", True),
    ("opencv_python_headless-4.11.0.86-cp37-abi3-manylinux_2_17_aarch64.manylinux2014_aarch64.whl", "bookworm", True),
    ("lgpio-0.2.2.0-cp311-cp311-manylinux_2_34_aarch64.whl", "bookworm", True),
    ("future-1.0-cp311-cp311-manylinux_2_39_aarch64.whl", "bookworm", False),  # needs a newer glibc
    ("gpiozero-2.0.1-py3-none-any.whl", "trixie", True),
    ("old-1.0-py2-none-any.whl", "bookworm", False),
])
def test_wheel_compatibility(name, release, ok):
    why = wheelhouse.compatible(wheelhouse.parse_wheel_name(name), targets.TARGETS[release])
    assert (why is None) == ok, why


def test_target_detection_helpers():
    info = targets.parse_os_release('PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nVERSION_CODENAME=trixie\n# c\n')
    assert info["VERSION_CODENAME"] == "trixie"
    assert targets.for_codename("trixie").python == "3.13"
    with pytest.raises(DeployError, match="supported releases: bookworm, trixie"):
        targets.for_codename("bullseye")
    header = bytearray(b"\x7fELF\x02\x01\x01" + bytes(13))
    header[18:20] = (0x28).to_bytes(2, "little")
    assert targets.elf_machine(bytes(header)) == "armv7l"
    assert "manylinux_2_36_aarch64" in targets.TARGETS["bookworm"].platforms


# ---------------------------------------------------------------------------------------------- #
# device settings


def _settings(tmp_path, gate=None, **prov):
    return provision.DeviceSettings(str(tmp_path / "dev.toml"), gate or {"device": {"name": "Front Door", "door_id": "d1"}}, prov)


def test_render_produces_the_boot_files(tmp_path):
    (tmp_path / "psk").write_text("correct horse battery\n")
    (tmp_path / "broker.pw").write_text("hunter22\n")
    s = _settings(tmp_path, {"device": {"name": "Front Door"}, "mqtt": {"username": "u", "password_file": "/etc/maskgate/secrets/broker"},
                             "gpio": {"lock_pin": 5, "lock_active_high": False}},
                  wifi_ssid="Café;1", wifi_psk_file=str(tmp_path / "psk"), wifi_country="de",
                  ssh_authorized_keys=[KEY], secrets={"broker": str(tmp_path / "broker.pw")})
    r = provision.render(s, layout.DEFAULT_CONFIG_TEXT)
    f = r.files
    assert tomllib.loads(f["/maskgate/device.toml"].decode())["mqtt"]["password_file"] == "/etc/maskgate/secrets/broker"
    assert "provision" not in tomllib.loads(f["/maskgate/device.toml"].decode())
    assert f["/maskgate/secrets/broker"] == b"hunter22\n"
    assert f["/maskgate/hostname"] == b"front-door\n"  # derived from device.name
    assert f["/maskgate/wifi/country"] == b"DE\n"
    nm = f["/maskgate/wifi/maskgate-wifi.nmconnection"].decode()
    assert "psk=correct horse battery\n" in nm
    assert "ssid=" + "".join(f"{b};" for b in "Café;1".encode()) in nm  # byte-list form for odd SSIDs
    assert f["/maskgate/ssh/admin-user"] == b"gateadmin\n" and f["/maskgate/ssh/authorized_keys"] == (KEY + "\n").encode()
    assert "/maskgate/ssh/disabled" not in f
    assert r.config.camera.source == "picamera2"  # the image's default, merged
    assert "gpio=5=op,dh" in r.config_txt("[all]\n")


def test_without_keys_ssh_is_off(tmp_path):
    r = provision.render(_settings(tmp_path), "")
    assert "/maskgate/ssh/disabled" in r.files and not r.ssh
    assert not any(k.startswith("/maskgate/wifi") for k in r.files)


@pytest.mark.parametrize("gate,prov,match", [
    ({"device": {"nmae": "x"}}, {}, "device.nmae"),
    ({"mqtt": {"password_file": "/etc/maskgate/secrets/pw"}}, {}, "mqtt.password_file.*has no 'pw'"),
    ({}, {"wifi_ssid": "net"}, "provision.wifi_country"),
    ({}, {"wifi_ssid": "net", "wifi_country": "GB"}, "provision.wifi_psk_file"),
    ({}, {"wifi_passphrase": "x"}, "provision.wifi_passphrase.*unknown key"),
    ({}, {"ssh_authorized_keys": ["-----BEGIN OPENSSH PRIVATE KEY-----"]}, "private key"),
    ({}, {"ssh_authorized_keys": ["hello"]}, "not an SSH public key"),
    ({}, {"admin_user": "root"}, "provision.admin_user"),
    ({}, {"hostname": "Not_Valid"}, "provision.hostname"),
    ({}, {"secrets": {"a/b": "x"}}, "provision.secrets.a/b"),
    ({}, {"secrets": {"pw": "/nonexistent/pw"}}, "file not found"),
])
def test_bad_device_settings_name_the_key(tmp_path, gate, prov, match):
    with pytest.raises(ConfigError, match=match):
        provision.render(_settings(tmp_path, gate, **prov), "")


def test_weak_psk_is_refused(tmp_path):
    (tmp_path / "psk").write_text("short\n")
    with pytest.raises(ConfigError, match="8-63"):
        provision.render(_settings(tmp_path, wifi_ssid="n", wifi_country="GB", wifi_psk_file=str(tmp_path / "psk")), "")


def test_load_file_resolves_paths_relative_to_it(tmp_path):
    sub = tmp_path / "cards"
    sub.mkdir()
    (sub / "front.toml").write_text('[device]\nname = "front"\n[provision]\nwifi_psk_file = "wifi.psk"\n'
                                    'secrets = { mqtt = "../pw" }\n')
    s = provision.load_file(sub / "front.toml")
    assert s.gate == {"device": {"name": "front"}}
    assert s.provision["wifi_psk_file"] == str(sub / "wifi.psk")
    assert s.provision["secrets"]["mqtt"] == str(sub / "../pw")


def test_csv_cells_get_the_schema_types():
    assert provision.coerce("policy.window", "7") == ("gate", "policy.window", 7)
    assert provision.coerce("mqtt.enabled", "yes")[2] is True
    assert provision.coerce("email.recipients", "a@x; b@y")[2] == ["a@x", "b@y"]
    assert provision.coerce("provision.wifi_hidden", "false")[2] is False
    assert provision.coerce("provision.secrets.mqtt", "pw.txt") == ("provision", "provision.secrets.mqtt", "pw.txt")
    for bad, match in (("policy.window", "whole number"), ("nope.key", "unknown section"), ("device.nope", "unknown key"),
                       ("provision.nope", "unknown column")):
        with pytest.raises(ConfigError, match=match):
            provision.coerce(bad, "x")


# ---------------------------------------------------------------------------------------------- #
# target safety, on a recorded sysfs tree


def _block(sysroot: Path, name: str, *, devpath: str, majmin: str, size_sectors: int = 0, parent: str | None = None,
           ro: str = "0", removable: str = "1", holders=(), slaves=(), vendor="Generic", model="SD Card Reader"):
    real = sysroot / "devices" / devpath
    real.mkdir(parents=True, exist_ok=True)
    (real / "size").write_text(f"{size_sectors}\n")
    (real / "ro").write_text(ro + "\n")
    (real / "holders").mkdir(exist_ok=True)
    for h in holders:
        (real / "holders" / h).mkdir()
    if slaves:
        (real / "slaves").mkdir(exist_ok=True)
        for s in slaves:
            os.symlink(os.path.relpath(sysroot / "devices" / s, real / "slaves"), real / "slaves" / Path(s).name)
    if parent:
        (real / "partition").write_text("1\n")
    else:
        (real / "removable").write_text(removable + "\n")
        (real / "device").mkdir(exist_ok=True)
        (real / "device" / "vendor").write_text(vendor + "\n")
        (real / "device" / "model").write_text(model + "\n")
    for d in ("class/block", "dev/block"):
        (sysroot / d).mkdir(parents=True, exist_ok=True)
    os.symlink(os.path.relpath(real, sysroot / "class/block"), sysroot / "class/block" / name)
    os.symlink(os.path.relpath(real, sysroot / "dev/block"), sysroot / "dev/block" / majmin)


@pytest.fixture
def fake_system(tmp_path):
    s = tmp_path / "sys"
    _block(s, "vda", devpath="virtio/block/vda", majmin="254:0", size_sectors=100_000_000, removable="0")
    _block(s, "vda1", devpath="virtio/block/vda/vda1", majmin="254:1", size_sectors=1000, parent="vda")
    _block(s, "vda2", devpath="virtio/block/vda/vda2", majmin="254:2", size_sectors=99_000_000, parent="vda", holders=["dm-0"])
    _block(s, "dm-0", devpath="virtual/block/dm-0", majmin="253:0", size_sectors=99_000_000, slaves=["virtio/block/vda/vda2"])
    _block(s, "sdb", devpath="usb/block/sdb", majmin="8:16", size_sectors=62_521_344, vendor="SanDisk")
    _block(s, "sdb1", devpath="usb/block/sdb/sdb1", majmin="8:17", size_sectors=1_048_576, parent="sdb")
    _block(s, "sdc", devpath="usb2/block/sdc", majmin="8:32", size_sectors=62_521_344)
    _block(s, "sdd", devpath="usb3/block/sdd", majmin="8:48", size_sectors=0)
    _block(s, "sde", devpath="usb4/block/sde", majmin="8:64", size_sectors=62_521_344, ro="1")
    _block(s, "sdf", devpath="usb5/block/sdf", majmin="8:80", size_sectors=62_521_344, holders=["md0"])
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "22 1 253:0 / / rw,relatime - ext4 /dev/mapper/vg-root rw\n"
        "23 22 0:21 / /proc rw - proc proc rw\n"
        "30 22 254:1 / /boot rw - vfat /dev/vda1 rw\n"
        "41 22 8:17 / /media/user/bootfs\\040copy rw - vfat /dev/sdb1 rw\n"
    )
    swaps = tmp_path / "swaps"
    swaps.write_text("Filename\tType\tSize\tUsed\tPriority\n")
    return safety.System(sys=s, mountinfo=mountinfo, swaps=swaps)


GB4 = 4 * 10**9


def test_a_free_card_is_accepted_and_described(fake_system):
    t = safety.check_block("/dev/sdc", "sdc", GB4, fake_system)
    assert t.kind == "block" and t.size == 62_521_344 * 512
    assert t.description == "Generic SD Card Reader (removable, 32.0 GB)"


@pytest.mark.parametrize("name,size,match", [
    ("vda", GB4, "is the system disk"),  # / is on dm-0, whose slave is vda2
    ("sdb", GB4, r"/dev/sdb1 is mounted on /media/user/bootfs copy"),
    ("sdb1", GB4, "is a partition of /dev/sdb"),
    ("sdd", GB4, "no medium"),
    ("sde", GB4, "read-only"),
    ("sdf", GB4, "in use by md0"),
    ("sdc", 40 * 10**9, r"smaller than the image \(32.0 GB < 40.0 GB\)"),
])
def test_dangerous_targets_are_refused(fake_system, name, size, match):
    with pytest.raises(UnsafeTarget, match=match):
        safety.check_block(f"/dev/{name}", name, size, fake_system)


def test_disks_in_use_follow_device_mapper(fake_system):
    used = safety.disks_in_use(fake_system)
    assert set(used) == {"vda", "sdb"}
    assert ("/dev/mapper/vg-root", "/") in used["vda"]


def test_regular_file_targets(tmp_path):
    img = tmp_path / "gate.img"
    img.write_bytes(b"x")
    assert safety.check_target(tmp_path / "new.img", 10).exists is False
    assert safety.check_target(img, 10, image=tmp_path / "other.img").kind == "file"
    with pytest.raises(UnsafeTarget, match="is the image itself"):
        safety.check_target(img, 10, image=img)
    with pytest.raises(UnsafeTarget, match="no such device"):
        safety.check_target("/dev/maskgate-no-such-card", 10)
    with pytest.raises(UnsafeTarget, match="neither a block device nor a regular file"):
        safety.check_target(tmp_path, 10)
    with pytest.raises(UnsafeTarget, match="not a folder"):
        safety.check_target(tmp_path / "missing" / "x.img", 10)


def test_this_machines_root_disk_is_refused():
    """The real /sys and /proc: whatever disk holds / must be refused (checked, never written)."""
    dev = os.stat("/").st_dev
    try:
        name = safety.block_name(os.major(dev), os.minor(dev))
    except UnsafeTarget:
        pytest.skip("/ is not on a block device here (overlay or network root)")
    disks = {d for d, mounts in safety.disks_in_use().items() if any(m == "/" for _, m in mounts)}
    assert disks, "no disk found under /"
    for disk in disks:
        with pytest.raises(UnsafeTarget, match="system disk"):
            safety.check_block(f"/dev/{disk}", disk, 1)
    assert name  # / has a block device and it was found


# ---------------------------------------------------------------------------------------------- #
# what ships into the image


def test_shell_scripts_are_strict_and_parse():
    scripts = sorted(FILES.glob("*.sh"))
    assert {p.name for p in scripts} == {"firstboot.sh", "install-os-packages.sh"}
    for p in scripts:
        lines = [ln for ln in p.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
        assert lines[0] == "set -euo pipefail", p.name
        assert p.read_text().startswith("#!/bin/bash\n")
        subprocess.run(["bash", "-n", str(p)], check=True)


def test_units_pass_systemd_analyze_verify():
    require_tools("systemd-analyze")
    for unit in layout.UNITS:
        proc = subprocess.run(["systemd-analyze", "verify", "--man=no", str(FILES / unit)], capture_output=True, text=True)
        # The executables live in the image, not on this machine; anything else is a real complaint.
        complaints = [ln for ln in (proc.stdout + proc.stderr).splitlines()
                      if ln.strip() and "is not executable: No such file or directory" not in ln]
        assert complaints == [], unit


def test_service_is_hardened():
    require_tools("systemd-analyze")
    proc = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(FILES / "maskgate.service")],
                          capture_output=True, text=True)
    m = re.search(r"Overall exposure level for maskgate\.service: ([\d.]+)", proc.stdout + proc.stderr)
    assert m, proc.stdout + proc.stderr
    assert float(m.group(1)) <= 1.5  # 2.0 before issue 16; tests/test_faults_hardening.py explains what remains
    unit = (FILES / "maskgate.service").read_text()
    for line in ("Type=notify", "Restart=always", "User=maskgate", "SupplementaryGroups=gpio video", "StateDirectory=maskgate",
                 "ProtectSystem=strict", "NoNewPrivileges=yes",
                 "ExecStart=/opt/maskgate/venv/bin/maskgate run --config /etc/maskgate/config.toml --config /etc/maskgate/device.toml",
                 "ExecStopPost=/opt/maskgate/venv/bin/maskgate lock --config /etc/maskgate/config.toml --config /etc/maskgate/device.toml"):
        assert line in unit.splitlines(), line
    assert re.search(r"^WatchdogSec=\d+", unit, re.M)
    assert "ReadWritePaths" not in unit  # the state directory is the only writable place


def test_default_config_validates():
    from maskgate.edge import config

    cfg = provision.render(provision.DeviceSettings("x", {}, {}), layout.DEFAULT_CONFIG_TEXT).config
    assert cfg.camera.source == "picamera2" and cfg.gpio.pin_factory == "lgpio"
    assert config.to_dict(cfg)["gpio"]["pin_factory"] == "lgpio"
