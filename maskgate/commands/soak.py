"""Soak the gate: replay visits at full speed for hours' worth of a door, report memory and descriptor slopes.

  maskgate soak --visits 600       a day at a busy door (see docs/faults.md for measured figures)

Uses ../shared/data/encounters, simulated pins and a temporary event database.
"""

from __future__ import annotations


def add_arguments(p):
    p.add_argument("--visits", type=int, default=600, help="visits to replay (default: %(default)s)")
    p.add_argument("--max-events", type=int, default=100000, help="events.max_events for the run (retention)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def main(args) -> int:
    import json
    from dataclasses import asdict

    from maskgate.soak import run_soak

    report = run_soak(args.visits, max_events=args.max_events)
    if args.json:
        print(json.dumps(asdict(report), indent=1))
    else:
        print("\n".join(report.lines()))
    return 0
