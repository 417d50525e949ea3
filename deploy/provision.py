"""A card's own settings: DEVICE.toml (or a fleet row) -> validated -> the files flash writes to the boot partition.

A device file is a gate config (``[device]``, ``[mqtt]``, ... exactly as ``maskgate run`` reads them,
validated against the image's defaults with :func:`maskgate.edge.config.load`) plus one table of its
own, ``[provision]``, for what is not the gate's business: host name, Wi-Fi, SSH keys and secret
files.  ``[provision]`` never reaches the card's device.toml.  Paths in it are files on *this*
computer, relative to the file (or fleet CSV) that names them; credentials are always files, never
inline, like the gate's own ``*_file`` keys.

What lands in the boot partition's ``maskgate/`` folder (first boot moves it into place; see
``files/firstboot.sh``)::

    device.toml            the gate settings for this card        -> /etc/maskgate/device.toml
    secrets/NAME           [provision.secrets] NAME = "file"       -> /etc/maskgate/secrets/NAME
    hostname               [provision] hostname (or device.name)   -> /etc/hostname
    wifi/country           [provision] wifi_country
    wifi/maskgate-wifi.nmconnection   SSID + passphrase            -> NetworkManager
    ssh/admin-user, ssh/authorized_keys   keys given: SSH on, key-only login for the admin
    ssh/disabled           no keys: SSH off
"""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
import tomllib
import typing
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maskgate.deploy import configtxt, layout, tomlw
from maskgate.errors import ConfigError, DeployError

#: [provision] keys: name -> (type, default, meaning).  Documented in deploy/README.md.
PROVISION_KEYS: dict[str, tuple[type, Any, str]] = {
    "hostname": (str, "", "Host name of the card; empty takes device.name when that is a valid host name."),
    "wifi_ssid": (str, "", "Wi-Fi network to join (NetworkManager); empty: no Wi-Fi (Ethernet only)."),
    "wifi_psk_file": (str, "", "File holding the Wi-Fi passphrase (8-63 characters, or 64 hex digits)."),
    "wifi_country": (str, "", "Two-letter regulatory country of the Wi-Fi (GB, DE, US, ...); needed with wifi_ssid."),
    "wifi_hidden": (bool, False, "The network does not broadcast its SSID."),
    "ssh_authorized_keys": (list, [], "SSH public keys of the administrator; none means SSH stays off."),
    "ssh_authorized_keys_file": (str, "", "File of SSH public keys (e.g. ~/.ssh/id_ed25519.pub), added to the list."),
    "admin_user": (str, "gateadmin", "Account the SSH keys log in to: no password, sudo without one."),
    "secrets": (dict, {}, "NAME = file: copied to /etc/maskgate/secrets/NAME (root:maskgate 0640), for *_file keys."),
}
PATH_KEYS = ("wifi_psk_file", "ssh_authorized_keys_file")

_HOSTNAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_USERNAME = re.compile(r"[a-z][a-z0-9-]{0,31}")
_SECRET_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_KEY_TYPES = r"(ssh-ed25519|ssh-rsa|ssh-dss|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com)"
_PUBKEY = re.compile(rf"(^|\s){_KEY_TYPES}\s+AAAA[A-Za-z0-9+/]+={{0,3}}(\s|$)")
RESERVED_USERS = {"root", layout.USER, "daemon", "nobody"}


@dataclass
class DeviceSettings:
    """One card's settings before validation: gate config tables and the [provision] table."""

    source: str  # where they came from, for error messages ("front.toml", "fleet.csv line 3")
    gate: dict[str, dict[str, Any]] = field(default_factory=dict)
    provision: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.gate.get("device", {}).get("name", "maskgate"))

    @property
    def door_id(self) -> str:
        return str(self.gate.get("device", {}).get("door_id", ""))


def load_file(path: str | Path) -> DeviceSettings:
    """Read a DEVICE.toml; paths in [provision] are made absolute relative to it."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DeployError(f"device config not found: {path}") from None
    except OSError as exc:
        raise DeployError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise DeployError(f"{path} is not valid TOML: {exc}") from None
    prov = data.pop("provision", {})
    if not isinstance(prov, dict):
        raise ConfigError("provision", "must be a table ([provision])")
    return DeviceSettings(str(path), data, resolve_paths(prov, path.parent))


def resolve_paths(prov: dict[str, Any], base: Path) -> dict[str, Any]:
    out = dict(prov)
    for key in PATH_KEYS:
        if isinstance(out.get(key), str) and out[key]:
            out[key] = str(_abs(out[key], base))
    if isinstance(out.get("secrets"), dict):
        out["secrets"] = {k: str(_abs(v, base)) if isinstance(v, str) else v for k, v in out["secrets"].items()}
    return out


def _abs(p: str, base: Path) -> Path:
    q = Path(os.path.expanduser(p))
    return q if q.is_absolute() else base / q


# ---------------------------------------------------------------------------------------------- #
# Validation


def check_provision(prov: dict[str, Any]) -> dict[str, Any]:
    """Types and known keys of [provision]; returns it with defaults filled in."""
    unknown = sorted(set(prov) - set(PROVISION_KEYS))
    if unknown:
        raise ConfigError(f"provision.{unknown[0]}", f"unknown key (known keys of [provision]: {', '.join(PROVISION_KEYS)})")
    out = {}
    for key, (tp, default, _) in PROVISION_KEYS.items():
        value = prov.get(key, default)
        dotted = f"provision.{key}"
        if tp is bool and not isinstance(value, bool):
            raise ConfigError(dotted, f"must be true or false, got {value!r}")
        if tp is str and not isinstance(value, str):
            raise ConfigError(dotted, f"must be a string, got {value!r}")
        if tp is list and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise ConfigError(dotted, f"must be a list of strings, got {value!r}")
        if tp is dict:
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise ConfigError(dotted, "must be a table of NAME = \"file\"")
            for name in value:
                if not _SECRET_NAME.fullmatch(name):
                    raise ConfigError(f"{dotted}.{name}", "secret names are letters, digits, '.', '_' and '-'")
        out[key] = value
    if out["wifi_ssid"]:
        if not re.fullmatch(r"[A-Za-z]{2}", out["wifi_country"]):
            raise ConfigError("provision.wifi_country", f"must be a two-letter country code with wifi_ssid, got {out['wifi_country']!r}")
        if not out["wifi_psk_file"]:
            raise ConfigError("provision.wifi_psk_file", "is needed with wifi_ssid (open networks are not supported)")
        if len(out["wifi_ssid"].encode()) > 32:
            raise ConfigError("provision.wifi_ssid", "is longer than 32 bytes")
    elif out["wifi_psk_file"]:
        raise ConfigError("provision.wifi_psk_file", "is set but provision.wifi_ssid is empty")
    if out["hostname"] and not _HOSTNAME.fullmatch(out["hostname"]):
        raise ConfigError("provision.hostname", f"{out['hostname']!r} is not a valid host name (a-z, 0-9, '-', at most 63)")
    if not _USERNAME.fullmatch(out["admin_user"]) or out["admin_user"] in RESERVED_USERS:
        raise ConfigError("provision.admin_user", f"{out['admin_user']!r} is not a usable account name")
    return out


def _read_secret_file(key: str, path: str, *, limit: int = 64 * 1024) -> bytes:
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(key, f"file not found: {p}") from None
    except OSError as exc:
        raise ConfigError(key, f"cannot read {p}: {exc.strerror}") from None
    if not data.strip():
        raise ConfigError(key, f"{p} is empty")
    if len(data) > limit:
        raise ConfigError(key, f"{p} is larger than {limit // 1024} KiB")
    return data


def ssh_keys(prov: dict[str, Any]) -> list[str]:
    lines = list(prov["ssh_authorized_keys"])
    if prov["ssh_authorized_keys_file"]:
        text = _read_secret_file("provision.ssh_authorized_keys_file", prov["ssh_authorized_keys_file"]).decode("utf-8", "replace")
        lines += text.splitlines()
    keys = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "PRIVATE KEY" in line:
            raise ConfigError("provision.ssh_authorized_keys", "that is a private key: give the public key (the .pub file)")
        if not _PUBKEY.search(line):
            raise ConfigError("provision.ssh_authorized_keys", f"not an SSH public key: {line[:40]!r}")
        keys.append(line)
    return keys


def wifi_psk(prov: dict[str, Any]) -> str:
    raw = _read_secret_file("provision.wifi_psk_file", prov["wifi_psk_file"], limit=1024).decode("utf-8", "replace")
    psk = raw.rstrip("\r\n")
    if not (8 <= len(psk) <= 63 and psk.isprintable() and psk.isascii()) and not re.fullmatch(r"[0-9A-Fa-f]{64}", psk):
        raise ConfigError("provision.wifi_psk_file", "a WPA passphrase is 8-63 printable ASCII characters (or 64 hex digits)")
    return psk


def hostname_for(settings: DeviceSettings, prov: dict[str, Any]) -> str | None:
    if prov["hostname"]:
        return prov["hostname"]
    derived = re.sub(r"[^a-z0-9-]+", "-", settings.name.lower()).strip("-")[:63].strip("-")
    return derived if _HOSTNAME.fullmatch(derived or "-") else None


@dataclass
class Rendered:
    """Validated settings, ready to write: the boot partition files and what the gate will run with."""

    settings: DeviceSettings
    config: Any  # maskgate.edge.config.Config: defaults + device.toml, as the gate will load them
    files: dict[str, bytes]  # FAT path -> contents
    hostname: str | None
    ssh: bool

    def config_txt(self, current: str) -> str:
        return configtxt.set_block(current, configtxt.lock_pin_block(self.config.gpio.lock_pin, self.config.gpio.lock_active_high))


def render(settings: DeviceSettings, defaults_text: str) -> Rendered:
    """Validate one card's settings against the image's defaults and produce the boot partition files."""
    from maskgate.edge import config

    prov = check_provision(settings.provision)
    device_text = tomlw.dumps(settings.gate, header=f"maskgate settings for {settings.name} (from {Path(settings.source).name}),\n"
                                                    "written by 'maskgate image flash'; overrides /etc/maskgate/config.toml key by key.")
    with tempfile.TemporaryDirectory(prefix="maskgate-device-") as tmp:
        d, c = Path(tmp) / "defaults.toml", Path(tmp) / "device.toml"
        d.write_text(defaults_text, encoding="utf-8")
        c.write_text(device_text, encoding="utf-8")
        cfg = config.load([d, c])
    _check_secret_references(cfg, prov)

    base = layout.BOOT_SETTINGS
    files: dict[str, bytes] = {f"{base}/device.toml": device_text.encode("utf-8")}
    for name, path in sorted(prov["secrets"].items()):
        files[f"{base}/secrets/{name}"] = _read_secret_file(f"provision.secrets.{name}", path)
    host = hostname_for(settings, prov)
    if host:
        files[f"{base}/hostname"] = (host + "\n").encode()
    if prov["wifi_ssid"]:
        files[f"{base}/wifi/country"] = (prov["wifi_country"].upper() + "\n").encode()
        files[f"{base}/wifi/maskgate-wifi.nmconnection"] = nmconnection(prov["wifi_ssid"], wifi_psk(prov), prov["wifi_hidden"]).encode()
    keys = ssh_keys(prov)
    if keys:
        files[f"{base}/ssh/admin-user"] = (prov["admin_user"] + "\n").encode()
        files[f"{base}/ssh/authorized_keys"] = "".join(k + "\n" for k in keys).encode()
    else:
        files[f"{base}/ssh/disabled"] = b"SSH stays off: this card was flashed without an SSH public key.\n"
    return Rendered(settings, cfg, files, host, bool(keys))


def _check_secret_references(cfg, prov: dict[str, Any]) -> None:
    """Every config value pointing into /etc/maskgate/secrets/ must name a secret this card gets."""
    prefix = layout.SECRETS + "/"
    for section in dataclasses.fields(cfg):
        values = dataclasses.asdict(getattr(cfg, section.name))
        for key, value in values.items():
            if isinstance(value, str) and value.startswith(prefix):
                name = value[len(prefix):]
                if name not in prov["secrets"]:
                    raise ConfigError(f"{section.name}.{key}", f"points to {value} but [provision.secrets] has no {name!r}")


def nmconnection(ssid: str, psk: str, hidden: bool) -> str:
    """A NetworkManager keyfile for a WPA-PSK network (ids derived from the SSID: reproducible)."""
    if ssid.isascii() and ssid.isprintable() and ";" not in ssid and "\\" not in ssid and ssid == ssid.strip():
        ssid_value = ssid
    else:  # the keyfile's byte-list form takes any SSID
        ssid_value = "".join(f"{b};" for b in ssid.encode("utf-8"))
    psk_value = psk.replace("\\", "\\\\")
    lines = [
        "[connection]", "id=maskgate-wifi", f"uuid={uuid.uuid5(uuid.NAMESPACE_URL, 'maskgate-wifi:' + ssid)}",
        "type=wifi", "autoconnect=true", "",
        "[wifi]", "mode=infrastructure", f"ssid={ssid_value}", *(["hidden=true"] if hidden else []), "",
        "[wifi-security]", "key-mgmt=wpa-psk", f"psk={psk_value}", "",
        "[ipv4]", "method=auto", "", "[ipv6]", "addr-gen-mode=default", "method=auto", "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- #
# Typed values from text (fleet CSV cells)


def column_type(key: str) -> tuple[str, Any]:
    """('gate' | 'provision', type) of a fleet column named by a dotted key; an error for unknown keys."""
    from maskgate.edge import config

    parts = key.split(".")
    if parts[0] == "provision":
        if len(parts) == 3 and parts[1] == "secrets":
            return "provision", str
        if len(parts) != 2 or parts[1] not in PROVISION_KEYS:
            raise ConfigError(key, f"unknown column (known keys of [provision]: {', '.join(PROVISION_KEYS)})")
        tp = PROVISION_KEYS[parts[1]][0]
        if tp is dict:
            raise ConfigError(key, "give each secret its own column: provision.secrets.NAME")
        return "provision", tp
    if len(parts) != 2:
        raise ConfigError(key, "columns are dotted config keys (device.name, mqtt.username, provision.wifi_ssid, ...)")
    sections = typing.get_type_hints(config.Config)
    if parts[0] not in sections:
        raise ConfigError(key, f"unknown section (known sections: {', '.join(sections)}, provision)")
    hints = typing.get_type_hints(sections[parts[0]])
    if parts[1] not in hints:
        raise ConfigError(key, f"unknown key of [{parts[0]}]")
    return "gate", hints[parts[1]]


def coerce(key: str, text: str) -> tuple[str, str, Any]:
    """('gate' | 'provision', dotted key, typed value) for a fleet column and a cell."""
    kind, tp = column_type(key)
    return kind, key, _typed(key, tp, text)


def _typed(key: str, tp, text: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is bool:
        low = text.strip().lower()
        if low in ("true", "yes", "1", "on"):
            return True
        if low in ("false", "no", "0", "off"):
            return False
        raise ConfigError(key, f"must be true or false, got {text!r}")
    if tp is int:
        try:
            return int(text.strip())
        except ValueError:
            raise ConfigError(key, f"must be a whole number, got {text!r}") from None
    if tp is float:
        try:
            return float(text.strip())
        except ValueError:
            raise ConfigError(key, f"must be a number, got {text!r}") from None
    if tp is list or origin is list:
        return [item.strip() for item in text.split(";") if item.strip()]
    return text


__all__ = ["DeviceSettings", "Rendered", "load_file", "render", "coerce", "column_type", "check_provision", "nmconnection",
           "PROVISION_KEYS", "resolve_paths"]
