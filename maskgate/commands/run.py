"""Run the gate: watch the doorway, unlock for a masked person, keep the door locked otherwise.

With no config, it replays the demo doorway clip (built from ../shared/data/encounters) with
simulated GPIO pins and prints each decision.  On a Raspberry Pi the defaults are the Pi camera
and the real pins.  Every exit path — end of a replayed file, SIGTERM, Ctrl-C, an error — leaves
the lock relay de-energized.

--mode monitor watches a hall instead: people, masked share and distancing violations as
telemetry and 'crowd' events; no lock, no GPIO (docs/annotate.md).

The installer's page (web.enabled, on in the SD image; --web here) is served beside the gate; its
"reload config" action restarts the gate with the re-validated config files, locked meanwhile.
"""

from __future__ import annotations

import sys


def add_arguments(p):
    p.add_argument("--config", action="append", default=[], metavar="FILE",
                   help="TOML config; repeat to layer files (later ones override earlier ones)")
    p.add_argument("--source", help="override camera.source: picamera2, demo, a camera index, a URL, a video, a folder or an image")
    p.add_argument("--fps", type=float, help="override camera.fps (replayed files: timestamps are index/fps)")
    p.add_argument("--events", metavar="FILE", help="also append every event to FILE as JSON lines")
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")
    p.add_argument("--realtime", action="store_true",
                   help="replay a file or folder at its frame rate (camera.fps) instead of as fast as possible")
    p.add_argument("--mqtt", metavar="URL", help="publish to this broker for this run (mqtt://HOST:PORT)")
    p.add_argument("--validate-config", action="store_true", help="check the config and exit (0: valid)")
    p.add_argument("--mode", choices=["gate", "monitor"], default="gate",
                   help="gate: the door (drives the lock); monitor: a hall camera counting people, masks and "
                        "distancing, never driving a lock (default: %(default)s)")
    p.add_argument("--web", action="store_true",
                   help="serve the installer's page for this run although web.enabled is false (gate mode)")


def load_config(args):
    from maskgate.edge import config as config_mod

    return apply_overrides(config_mod.load(args.config), args)


def apply_overrides(cfg, args):
    """The command line's --source, --fps and --mqtt on top of a config."""
    camera = {}
    if getattr(args, "source", None):
        camera["source"] = args.source
    if getattr(args, "fps", None):
        camera["fps"] = args.fps
    if camera:
        cfg = cfg.replace(camera=camera)
    if getattr(args, "mqtt", None):
        from maskgate.edge.alerts import mqtt_override

        cfg = mqtt_override(cfg, args.mqtt)
    return cfg


def print_event(event) -> None:
    parts = [f"frame {event.frame:>5}" if event.frame >= 0 else " " * 11, f"t={event.ts:8.2f}s", f"{event.event.upper():<13}"]
    if event.detail:
        parts.append(event.detail)
    if event.p_mask is not None:
        parts.append(f"p_mask={event.p_mask:.2f}")
    print("  ".join(parts), flush=True)


def main(args) -> int:
    cfg = load_config(args)
    if args.validate_config:
        print(f"config OK: {', '.join(args.config) or '(defaults)'}")
        return 0
    from maskgate.edge.sources import open_source

    source = open_source(cfg.camera.source, cfg.camera, keep_main=cfg.events.snapshots)
    from maskgate.edge.sources.replay import PacedSource

    if args.realtime:
        source = PacedSource(source)  # a live camera is refused: it is real time already
    if args.mode == "monitor":
        from maskgate.edge.monitor import Monitor

        monitor = Monitor(cfg, source=source, events_file=args.events, on_event=print_event, max_frames=args.max_frames)
        frames = monitor.run()
        print(f"stopped after {frames} frames ({monitor.analysed} analysed); monitor mode, no lock driven", file=sys.stderr)
        return 0
    from maskgate.edge.gate import Gate

    web = None
    if cfg.web.enabled or args.web:
        from maskgate.edge.web import WebServer

        web = WebServer(cfg, config_paths=args.config)
        web.start()
        print(f"installer's page: {web.url} (tokens in {web.tokens_file})", file=sys.stderr, flush=True)
    try:
        while True:
            gate = Gate(cfg, source=source, events_file=args.events, on_event=print_event, max_frames=args.max_frames)
            if web is not None:
                web.attach(gate)
            frames = gate.run()
            print(f"stopped after {frames} frames ({gate.analysed} analysed); lock de-energized", file=sys.stderr)
            if gate.reload_config is None:
                return 0
            cfg = apply_overrides(gate.reload_config, args)
            print("reloading the config from the installer's page", file=sys.stderr, flush=True)
            source = open_source(cfg.camera.source, cfg.camera, keep_main=cfg.events.snapshots)
            if args.realtime:
                source = PacedSource(source)
    finally:
        if web is not None:
            web.stop()
