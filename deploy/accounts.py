"""The image's user database (/etc/passwd, group, shadow, gshadow) as text: add the service user, lock passwords.

The build edits these files in the image instead of running ``useradd`` in a chroot, so the gate's
files can be owned by the ``maskgate`` uid before the card ever boots.  Ids are picked like
``useradd --system`` does (the highest free id at or below 999, same number for user and group), so
the same base image always gives the same ids.  Pure functions over strings; tested without an image.
"""

from __future__ import annotations

from dataclasses import dataclass

from maskgate.errors import DeployError

SYSTEM_ID_MIN, SYSTEM_ID_MAX = 100, 999


@dataclass
class UserDb:
    passwd: str
    group: str
    shadow: str
    gshadow: str | None = None  # not every image has one

    # -- parsing helpers ------------------------------------------------------------------- #

    @staticmethod
    def _rows(text: str) -> list[list[str]]:
        return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]

    @staticmethod
    def _join(rows: list[list[str]]) -> str:
        return "".join(":".join(r) + "\n" for r in rows)

    def user(self, name: str) -> list[str] | None:
        return next((r for r in self._rows(self.passwd) if r[0] == name), None)

    def group_row(self, name: str) -> list[str] | None:
        return next((r for r in self._rows(self.group) if r[0] == name), None)

    def members(self, group: str) -> list[str]:
        row = self.group_row(group)
        return [m for m in row[3].split(",") if m] if row and len(row) > 3 else []

    def _used_ids(self) -> set[int]:
        """Every uid and gid in use (a new system account takes an id free as both)."""
        ids = set()
        for r in self._rows(self.passwd):
            ids.update(int(f) for f in r[2:4] if f.isdigit())
        for r in self._rows(self.group):
            ids.update(int(f) for f in r[2:3] if f.isdigit())
        return ids

    def _free_system_id(self) -> int:
        used = self._used_ids()
        for n in range(SYSTEM_ID_MAX, SYSTEM_ID_MIN - 1, -1):
            if n not in used:
                return n
        raise DeployError(f"no free system user/group id between {SYSTEM_ID_MIN} and {SYSTEM_ID_MAX} in the base image")

    # -- changes ------------------------------------------------------------------------- #

    def ensure_group(self, name: str) -> int:
        """The gid of ``name``, creating it as a system group (no password) if missing."""
        row = self.group_row(name)
        if row is not None:
            return int(row[2])
        gid = self._free_system_id()
        self.group = _append(self.group, f"{name}:x:{gid}:")
        if self.gshadow is not None:
            self.gshadow = _append(self.gshadow, f"{name}:!::")
        return gid

    def ensure_system_user(self, name: str, *, home: str, comment: str, shell: str = "/usr/sbin/nologin") -> tuple[int, int]:
        """(uid, gid) of a locked system user with its own group, created if missing."""
        row = self.user(name)
        if row is not None:
            return int(row[2]), int(row[3])
        grp = self.group_row(name)
        if grp is None:
            gid = self.ensure_group(name)
        else:
            gid = int(grp[2])
        uids = {int(r[2]) for r in self._rows(self.passwd) if r[2].isdigit()}
        uid = gid if gid not in uids else self._free_system_id()
        self.passwd = _append(self.passwd, f"{name}:x:{uid}:{gid}:{comment}:{home}:{shell}")
        # '*' can never match a password: no login with a password, ever.
        self.shadow = _append(self.shadow, f"{name}:*:::::::")
        return uid, gid

    def add_member(self, group: str, user: str) -> None:
        """Add ``user`` to the member list of ``group`` (in group and gshadow)."""
        self.group = _add_member(self.group, group, user, index=3)
        if self.gshadow is not None:
            if not any(line.split(":")[0] == group for line in self.gshadow.splitlines()):
                self.gshadow = _append(self.gshadow, f"{group}:!::")
            self.gshadow = _add_member(self.gshadow, group, user, index=3)

    def lock_passwords(self) -> list[str]:
        """Lock every account that has a usable password or none at all; return their names.

        An empty password field means "log in without a password"; a hash is some default password.
        Both become unusable: empty turns into '*', a hash gets the '!' prefix ``passwd -l`` uses.
        """
        locked = []
        rows = []
        for line in self.shadow.splitlines():
            r = line.split(":")
            if line and not line.startswith("#") and len(r) > 1:
                pw = r[1]
                if pw == "":
                    r[1] = "*"
                    locked.append(r[0])
                elif not pw.startswith(("!", "*")):
                    r[1] = "!" + pw
                    locked.append(r[0])
            rows.append(":".join(r))
        self.shadow = "".join(row + "\n" for row in rows)
        return locked


def _append(text: str, line: str) -> str:
    if text and not text.endswith("\n"):
        text += "\n"
    return text + line + "\n"


def _add_member(text: str, group: str, user: str, *, index: int) -> str:
    out = []
    found = False
    for line in text.splitlines():
        r = line.split(":")
        if r[0] == group and len(r) > index:
            found = True
            members = [m for m in r[index].split(",") if m]
            if user not in members:
                members.append(user)
            r[index] = ",".join(members)
            line = ":".join(r)
        out.append(line)
    if not found:
        raise DeployError(f"group {group!r} is not in the image's group file")
    return "".join(line + "\n" for line in out)


__all__ = ["UserDb", "SYSTEM_ID_MIN", "SYSTEM_ID_MAX"]
