"""The page's per-device secret: one token for the admin role, one for the read-only viewer role.

There is no default password.  The tokens live in a small TOML file (``admin = "..."``,
``viewer = "..."``, readable by the gate's user only): the SD image's first boot writes it to
``/etc/maskgate/secrets/web-secret.toml`` unless the card was flashed with one; anywhere else the
first start writes new random tokens to ``<state dir>/web-secret.toml`` and logs where they are.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
import tomllib
from dataclasses import dataclass
from pathlib import Path

from maskgate.edge.config import Config, state_dir
from maskgate.errors import WebError

log = logging.getLogger(__name__)

ROLES = ("viewer", "admin")
MIN_TOKEN_CHARS = 16


@dataclass(frozen=True)
class Tokens:
    admin: str
    viewer: str

    def role_of(self, presented: str | None) -> str | None:
        """``"admin"``, ``"viewer"`` or None; compared in constant time."""
        if not presented:
            return None
        given = presented.encode()
        if hmac.compare_digest(given, self.admin.encode()):
            return "admin"
        if hmac.compare_digest(given, self.viewer.encode()):
            return "viewer"
        return None


def secret_path(cfg: Config) -> Path:
    return Path(cfg.web.secret_file) if cfg.web.secret_file else state_dir() / "web-secret.toml"


def new_token() -> str:
    return secrets.token_urlsafe(24)


def write_tokens(path: Path, tokens: Tokens) -> None:
    """Write ``tokens`` to ``path``, readable by its owner only (created so, never world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("# maskgate installer's page: log in with one of these tokens\n")
        fh.write(f'admin = "{tokens.admin}"\nviewer = "{tokens.viewer}"\n')


def read_tokens(path: Path) -> Tokens:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise WebError(f"cannot read the page's secret file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise WebError(f"the page's secret file {path} is not valid TOML: {exc}") from None
    values = {}
    for role in ROLES:
        value = data.get(role)
        if not isinstance(value, str) or len(value) < MIN_TOKEN_CHARS:
            raise WebError(f"the page's secret file {path} needs {role} = \"...\" of at least {MIN_TOKEN_CHARS} characters")
        values[role] = value
    if values["admin"] == values["viewer"]:
        raise WebError(f"the page's secret file {path} gives the admin and the viewer the same token")
    return Tokens(**values)


def load_or_create(path: Path) -> Tokens:
    """The tokens in ``path``; a missing file is created with new random tokens (logged, never printed)."""
    if not path.exists():
        try:
            write_tokens(path, Tokens(admin=new_token(), viewer=new_token()))
        except FileExistsError:
            pass  # another process made it first
        except OSError as exc:
            raise WebError(f"cannot create the page's secret file {path}: {exc.strerror}") from None
        else:
            log.warning("installer's page: new tokens written to %s (admin and viewer)", path)
    return read_tokens(path)
