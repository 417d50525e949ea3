"""Where things go on the card: one list of paths shared by build, flash, first boot's docs and the tests."""

from __future__ import annotations

from importlib import resources

PREFIX = "/opt/maskgate"
WHEELHOUSE = f"{PREFIX}/wheelhouse"
VENV = f"{PREFIX}/venv"
FIRSTBOOT = f"{PREFIX}/firstboot.sh"
OS_PACKAGES = f"{PREFIX}/install-os-packages.sh"
BUILD_MANIFEST = f"{PREFIX}/build-manifest.json"
ETC = "/etc/maskgate"
DEFAULT_CONFIG = f"{ETC}/config.toml"
DEVICE_CONFIG = f"{ETC}/device.toml"
SECRETS = f"{ETC}/secrets"
STATE = "/var/lib/maskgate"
UNIT_DIR = "/etc/systemd/system"
WANTS = f"{UNIT_DIR}/multi-user.target.wants"
SSHD_DROPIN = "/etc/ssh/sshd_config.d/10-maskgate.conf"

USER = "maskgate"
USER_GROUPS = ("gpio", "video")

#: units installed and enabled (multi-user.target.wants)
UNITS = ("maskgate.service", "maskgate-firstboot.service", "maskgate-os-packages.service")
#: Raspberry Pi OS's first-user wizard: it asks at the console for a user and a password and holds
#: multi-user.target until someone answers.  A gate has no password, so the build masks it.
MASKED_UNITS = ("userconfig.service",)
UNIT_SEARCH = ("/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system")

# The boot (FAT) partition
BOOT_SETTINGS = "/maskgate"  # folder flash writes the card's settings into
#: files Raspberry Pi OS turns into a user with a password (userconf) or SSH with passwords (ssh)
BOOT_REMOVE = ("userconf", "userconf.txt", "ssh", "ssh.txt")

DEFAULT_CONFIG_TEXT = """\
# maskgate defaults for this image.  Each card's own settings are in /etc/maskgate/device.toml,
# which overrides these key by key.  Reference: `maskgate config reference`.
[camera]
source = "picamera2"

[gpio]
pin_factory = "lgpio"

# The installer's page on every interface, port 8080; its tokens are written at first boot to
# /var/lib/maskgate/web-secret.toml (README, "The installer's page").
[web]
enabled = true
bind = "0.0.0.0"
"""


def package_file(name: str) -> bytes:
    """A file shipped in maskgate.deploy's files/ folder (unit files, scripts)."""
    return resources.files("maskgate.deploy").joinpath("files", name).read_bytes()


__all__ = [name for name in dir() if name.isupper()] + ["package_file"]
