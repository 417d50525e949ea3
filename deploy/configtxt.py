"""The lock relay's pin in the firmware's config.txt: de-energized from power-on, before Linux runs.

Between power-on and the moment the gate (or ``maskgate lock``) drives the relay, the pin is whatever
the firmware leaves it.  A ``gpio=`` line makes the firmware drive it to the relay's off level at
boot.  The line lives in a marked block at the end of config.txt (after an ``[all]`` filter, so an
earlier ``[pi4]`` section cannot swallow it); writing it again replaces the block.
"""

from __future__ import annotations

BEGIN = "# >>> maskgate: keep the door-lock relay de-energized from power-on (managed by 'maskgate image')"
END = "# <<< maskgate"


def lock_pin_block(lock_pin: int, active_high: bool) -> str:
    level = "dl" if active_high else "dh"  # de-energized: low for an active-high relay board
    return f"{BEGIN}\n[all]\ngpio={lock_pin}=op,{level}\n{END}\n"


def set_block(config_txt: str, block: str) -> str:
    """config.txt with the maskgate block replaced (or appended)."""
    lines = config_txt.splitlines(keepends=True)
    out, inside = [], False
    for line in lines:
        stripped = line.strip()
        if stripped == BEGIN:
            inside = True
            continue
        if inside:
            if stripped == END:
                inside = False
            continue
        out.append(line)
    text = "".join(out)
    if text and not text.endswith("\n"):
        text += "\n"
    return text + block


def get_block(config_txt: str) -> str | None:
    start = config_txt.find(BEGIN)
    if start < 0:
        return None
    end = config_txt.find(END, start)
    return config_txt[start : end + len(END) + 1] if end >= 0 else None


__all__ = ["lock_pin_block", "set_block", "get_block", "BEGIN", "END"]
