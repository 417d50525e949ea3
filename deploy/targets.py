"""Which Raspberry Pi OS release a base image is, and what that means for the wheels it needs.

The release is read from the image's ``/etc/os-release`` (``VERSION_CODENAME``); the CPU from the ELF
header of its Python.  Each release fixes the Python the venv is created with and the newest glibc
(manylinux tag) its wheels may need.  On Bookworm the OS's own compiled modules (picamera2's
simplejpeg, ...) are built against NumPy 1.x, and the venv sees them (``--system-site-packages``),
so the wheelhouse keeps NumPy below 2 there.  gpiozero's ``lgpio`` backend comes from PyPI where
it has a wheel for the release's Python (Bookworm), else from the OS.
"""

from __future__ import annotations

from dataclasses import dataclass

from maskgate.errors import DeployError

_ELF_MACHINES = {0xB7: "aarch64", 0x28: "armv7l", 0x3E: "x86_64", 0x03: "i386"}


@dataclass(frozen=True)
class Target:
    codename: str
    python: str  # "3.11"
    glibc: tuple[int, int]
    constraints: tuple[str, ...] = ()
    #: installed beside maskgate (first boot's requirements.txt) unless ``--extra`` says otherwise
    extras: tuple[str, ...] = ()
    arch: str = "aarch64"

    @property
    def cp(self) -> str:
        return "cp" + self.python.replace(".", "")

    @property
    def platforms(self) -> list[str]:
        """pip ``--platform`` tags a wheel may carry to run here (newest first)."""
        major, minor = self.glibc
        tags = [f"manylinux_{major}_{m}_{self.arch}" for m in range(minor, 16, -1)]
        return tags + [f"manylinux2014_{self.arch}", f"linux_{self.arch}"]

    @property
    def abis(self) -> list[str]:
        return [self.cp, "abi3", "none"]

    @property
    def key(self) -> str:
        return f"{self.codename}-{self.cp}-{self.arch}"


TARGETS = {
    # lgpio is gpiozero's pin backend on Raspberry Pi OS; PyPI has wheels for cp311 but not cp313, so
    # on Trixie it comes from the OS (python3-lgpio, see files/install-os-packages.sh).
    "bookworm": Target("bookworm", "3.11", (2, 36), constraints=("numpy<2",), extras=("lgpio>=0.2.2",)),
    "trixie": Target("trixie", "3.13", (2, 41)),
}


def parse_os_release(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.startswith("#"):
            out[key.strip()] = value.strip().strip('"').strip("'")
    return out


def for_codename(codename: str) -> Target:
    try:
        return TARGETS[codename]
    except KeyError:
        raise DeployError(
            f"base image is Debian/Raspberry Pi OS {codename or '(no VERSION_CODENAME)'!r}; supported releases: {', '.join(TARGETS)}"
        ) from None


def elf_machine(header: bytes) -> str:
    """The CPU an ELF binary is for, from its first 20 bytes."""
    if len(header) < 20 or header[:4] != b"\x7fELF":
        raise DeployError("the base image's Python is not an ELF executable")
    order = "little" if header[5] == 1 else "big"
    machine = int.from_bytes(header[18:20], order)
    return _ELF_MACHINES.get(machine, f"machine {machine:#x}")


__all__ = ["Target", "TARGETS", "parse_os_release", "for_codename", "elf_machine"]
