"""``maskgate image flash --fleet FLEET.csv``: many cards, one row each, then a summary.

The CSV's header names dotted config keys (``device.name``, ``device.door_id``, ``mqtt.username``,
``provision.wifi_ssid``, ``provision.secrets.mqtt_password``, ...) and optionally ``target``, the
device or file to write that row's card to.  Each row's non-empty cells go on top of the template
(``--config``, a DEVICE.toml shared by the fleet), so the CSV only holds what differs per card.
Lists (``email.recipients``) are ``;``-separated; file paths are relative to the CSV.

Every row is validated before the first card is written.  Cards are then written one after the
other; a card that fails is reported and the next one is written.  With one reader for all rows the
user is asked to swap cards in between.
"""

from __future__ import annotations

import copy
import csv
import logging
import os
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from maskgate.deploy import flash as flashlib, provision, safety
from maskgate.deploy.provision import DeviceSettings, Rendered
from maskgate.errors import DeployError, MaskgateError

log = logging.getLogger(__name__)


@dataclass
class Card:
    line: int
    target: str
    rendered: Rendered


def load(csv_path: str | Path, template: DeviceSettings | None, device: str | None, defaults_text: str) -> list[Card]:
    """Read and validate every row; raise on the first bad one (nothing has been written yet)."""
    csv_path = Path(csv_path)
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DeployError(f"fleet file not found: {csv_path}") from None
    except OSError as exc:
        raise DeployError(f"cannot read {csv_path}: {exc.strerror}") from None
    reader = csv.DictReader(text.splitlines())
    columns = [c.strip() for c in reader.fieldnames or []]
    if not columns:
        raise DeployError(f"{csv_path} is empty: the first line names the columns (device.name, device.door_id, ...)")
    for col in columns:
        if col != "target":
            try:
                provision.column_type(col)
            except MaskgateError as exc:
                raise DeployError(f"{csv_path} column '{col}': {exc}") from None
    if "target" not in columns and not device:
        raise DeployError(f"{csv_path} has no 'target' column: pass --device (it may contain {{name}})")

    cards: list[Card] = []
    for index, row in enumerate(reader, start=1):
        line = reader.line_num
        cells = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
        if not any(cells.values()):
            continue
        where = f"{csv_path.name} line {line}"
        try:
            settings = _settings(cells, template, csv_path, where)
            rendered = provision.render(settings, defaults_text)
            target = cells.get("target") or _target(device or "", settings, index)
        except MaskgateError as exc:
            name = cells.get("device.name", "")
            raise DeployError(f"{where}{f' ({name})' if name else ''}: {exc}") from None
        cards.append(Card(line, target, rendered))
    if not cards:
        raise DeployError(f"{csv_path} has no rows")
    _check_unique(cards, csv_path)
    return cards


def _settings(cells: dict[str, str], template: DeviceSettings | None, csv_path: Path, where: str) -> DeviceSettings:
    gate = copy.deepcopy(template.gate) if template else {}
    prov = copy.deepcopy(template.provision) if template else {}
    row_prov: dict = {}
    for col, cell in cells.items():
        if col == "target" or cell == "":
            continue
        kind, key, value = provision.coerce(col, cell)
        parts = key.split(".")
        if kind == "gate":
            gate.setdefault(parts[0], {})[parts[1]] = value
        elif len(parts) == 3:
            row_prov.setdefault("secrets", {})[parts[2]] = value
        else:
            row_prov[parts[1]] = value
    row_prov = provision.resolve_paths(row_prov, csv_path.parent)
    if "secrets" in row_prov:
        prov["secrets"] = {**prov.get("secrets", {}), **row_prov.pop("secrets")}
    prov.update(row_prov)
    return DeviceSettings(where, gate, prov)


def _target(pattern: str, settings: DeviceSettings, index: int) -> str:
    try:
        return pattern.format(name=settings.name, door_id=settings.door_id, index=index)
    except (KeyError, IndexError, ValueError) as exc:
        raise DeployError(f"--device {pattern!r}: only {{name}}, {{door_id}} and {{index}} can be filled in ({exc})") from None


def _check_unique(cards: list[Card], csv_path: Path) -> None:
    names: dict[str, int] = {}
    files: dict[str, int] = {}
    for c in cards:
        name = c.rendered.settings.name
        if name in names:
            raise DeployError(f"{csv_path.name} line {c.line}: device.name '{name}' is already used on line {names[name]}")
        names[name] = c.line
        if not _is_block(c.target):
            real = os.path.realpath(c.target)
            if real in files:
                raise DeployError(f"{csv_path.name} line {c.line}: target {c.target} is already used on line {files[real]}")
            files[real] = c.line


def _is_block(path: str) -> bool:
    try:
        return stat.S_ISBLK(os.stat(path).st_mode)
    except OSError:
        return False


def swap_prompt(message: str) -> bool:
    if not sys.stdin.isatty():
        raise DeployError("cannot ask for the next card: no terminal")
    print(message, file=sys.stderr)
    return input("Press Enter when it is in (or type 'skip'): ").strip().lower() != "skip"


def flash_all(image: flashlib.Image, cards: list[Card], *, yes: bool = False, settings_only: bool = False,
              confirm: Callable[[str], bool] = flashlib.ask, swap: Callable[[str], bool] = swap_prompt,
              system: safety.System = safety.System()) -> list[flashlib.Result]:
    """Write every card; failures are recorded in their Result and the next card is written."""
    block_targets = [c.target for c in cards if _is_block(c.target)]
    repeated = {t for t in block_targets if block_targets.count(t) > 1}
    if repeated and yes:
        raise DeployError(f"--yes with one card reader ({', '.join(sorted(repeated))}) for several rows would write the "
                          "same card again and again: drop --yes to be asked to swap cards, or give each row its own target")
    results = []
    previous = None
    for card in cards:
        name = card.rendered.settings.name
        if card.target in repeated and previous == card.target:
            if not swap(f"Put the card for '{name}' ({card.target}) into the reader."):
                results.append(flashlib.Result(card.target, name, error="skipped"))
                continue
        log.info("card %d/%d: '%s' -> %s", len(results) + 1, len(cards), name, card.target)
        try:
            results.append(flashlib.flash(image, card.target, card.rendered, yes=yes, confirm=confirm,
                                          settings_only=settings_only, system=system))
        except MaskgateError as exc:
            log.error("card '%s' (%s) failed: %s", name, card.target, exc)
            results.append(flashlib.Result(card.target, name, error=str(exc)))
        previous = card.target
    return results


def summary(results: list[flashlib.Result]) -> str:
    rows = [("card", "target", "written", "verified", "settings", "result")]
    for r in results:
        rows.append((r.name, r.target, f"{r.written >> 20} MiB", "yes" if r.verified else "no",
                     str(len(r.settings)), "ok" if not r.error else f"FAILED: {r.error}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths)) + "  " + row[-1] for row in rows]
    ok = sum(1 for r in results if not r.error)
    failed = len(results) - ok
    lines.append(f"{ok} of {len(results)} cards done" + (f"; {failed} FAILED" if failed else ""))
    return "\n".join(lines)


__all__ = ["Card", "load", "flash_all", "summary", "swap_prompt"]
