"""Secrets (broker and SMTP passwords, the webhook's HMAC key) come from files named in the config.

The config holds only the file's path, so config files can be shared, diffed and committed without
leaking anything.  The value is read once at start-up; it is never logged.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from maskgate.errors import ConfigError

log = logging.getLogger(__name__)


def read_secret(path: str, key: str) -> str:
    """The secret in the file ``path`` (one line; surrounding whitespace stripped).

    A missing, unreadable or empty file is a :class:`ConfigError` naming ``key`` (e.g.
    ``mqtt.password_file``), and so is a file that every user may read: its secret is no secret.
    """
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
        mode = p.stat().st_mode
    except FileNotFoundError:
        raise ConfigError(key, f"secret file not found: {p}") from None
    except IsADirectoryError:
        raise ConfigError(key, f"secret file is a directory: {p}") from None
    except OSError as exc:
        raise ConfigError(key, f"cannot read secret file {p}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(key, f"secret file {p} is not UTF-8 text") from None
    if mode & stat.S_IROTH and os.name == "posix":
        raise ConfigError(key, f"secret file {p} is readable by every user: chmod o-r {p} (600 or 640)")
    secret = text.strip()
    if not secret:
        raise ConfigError(key, f"secret file {p} is empty")
    return secret


def check_readable(path: str, key: str) -> str:
    """``path`` if it is a readable file (CA certificates), else a :class:`ConfigError` naming ``key``."""
    p = Path(path).expanduser()
    try:
        with open(p, "rb"):
            pass
    except FileNotFoundError:
        raise ConfigError(key, f"file not found: {p}") from None
    except OSError as exc:
        raise ConfigError(key, f"cannot read {p}: {exc.strerror}") from None
    return str(p)
