"""Build Raspberry Pi OS SD images with the gate installed, and flash them onto cards.

  maskgate image build --base RASPIOS-LITE.img[.xz] --out GATE.img [--config DEFAULTS.toml]
      the stock image + the gate (offline wheelhouse, units, first boot); writes GATE.img,
      GATE.img.bmap and GATE.img.manifest.json.  Nothing is mounted; no root needed.
  maskgate image flash GATE.img --device /dev/sdX --config DEVICE.toml [--yes]
      writes the image (bmap: only blocks that hold data), reads it back, then this card's
      settings (name, door, Wi-Fi, broker credentials, SSH key) into its boot partition.
  maskgate image flash GATE.img --fleet FLEET.csv [--config TEMPLATE.toml] --device DEV [--yes]
      one card per CSV row, one after the other, then a summary.
  maskgate image wheelhouse --release bookworm|trixie
      download (or refresh) the cached aarch64 wheelhouse for that release and print its folder.
  maskgate image boot CARD.img [--timeout SECONDS]
      boot a copy of an image (flash one to a file first to give it settings) under
      qemu-system-aarch64: first boot, the gate's READY and watchdog, its events; then a verdict.

See deploy/README.md for the formats of DEVICE.toml and FLEET.csv.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    try:
        if t and t[-1] in units:
            return int(float(t[:-1]) * units[t[-1]])
        return int(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 128M, 1G)") from None


def add_arguments(p):
    sub = p.add_subparsers(dest="image_command", metavar="ACTION", required=True)

    b = sub.add_parser("build", help="build an SD image with the gate installed",
                       description="Build an SD image from the stock Raspberry Pi OS Lite (64-bit) image, without mounting it.")
    b.add_argument("--base", required=True, type=Path, metavar="BASE.img", help="Raspberry Pi OS Lite (64-bit) image, .img or .img.xz")
    b.add_argument("--out", required=True, type=Path, metavar="OUT.img", help="the image to write (plus OUT.img.bmap and OUT.img.manifest.json)")
    b.add_argument("--config", type=Path, metavar="DEFAULTS.toml", help="default gate config for every card (default: picamera2 camera, lgpio pins)")
    b.add_argument("--wheelhouse", type=Path, metavar="DIR", help="pre-made folder of dependency wheels for the card (default: pip download, cached)")
    b.add_argument("--wheel", type=Path, metavar="FILE", help="pre-built maskgate wheel (default: built from this source tree)")
    b.add_argument("--extra", action="append", metavar="REQ", help="requirement installed beside maskgate (repeatable; default: the release's, e.g. lgpio)")
    b.add_argument("--refresh-wheelhouse", action="store_true", help="download the wheelhouse again even if it is cached")
    b.add_argument("--allow-missing-deps", action="store_true", help="build even if the wheelhouse alone cannot install maskgate offline")
    b.add_argument("--allow-missing-models", action="store_true", help="build even if the wheel has no maskgate/models/*.tflite (test images)")
    b.add_argument("--reserve", type=_size, default="128M", metavar="SIZE", help="free space to leave in the root file system (default: 128M)")

    f = sub.add_parser("flash", help="write an image to SD cards, each with its own settings",
                       description="Write a built image to a card (or a regular file), verify it, and write the card's settings.")
    f.add_argument("image", type=Path, metavar="IMAGE", help="an image made by 'maskgate image build'")
    f.add_argument("--device", metavar="DEV", help="the card (/dev/sdX, /dev/mmcblkN) or a regular file; with --fleet it may contain {name}")
    f.add_argument("--config", type=Path, metavar="DEVICE.toml", help="this card's settings (with --fleet: settings shared by every row)")
    f.add_argument("--fleet", type=Path, metavar="FLEET.csv", help="one card per row")
    f.add_argument("--yes", action="store_true", help="do not ask before overwriting")
    f.add_argument("--bmap", type=Path, metavar="FILE", help="block map (default: IMAGE.bmap when it exists)")
    f.add_argument("--no-bmap", action="store_true", help="write every block of the image")
    f.add_argument("--settings-only", action="store_true", help="only rewrite the settings of a card flashed before")

    w = sub.add_parser("wheelhouse", help="download the cached wheelhouse for a release",
                       description="Download maskgate's dependencies for the card (aarch64) into the cache and print the folder.")
    w.add_argument("--release", default="bookworm", help="Raspberry Pi OS release: bookworm (Python 3.11) or trixie (3.13)")
    w.add_argument("--wheel", type=Path, metavar="FILE", help="maskgate wheel whose requirements to download (default: this source tree's)")
    w.add_argument("--extra", action="append", metavar="REQ", help="requirement to add (default: the release's)")
    w.add_argument("--refresh", action="store_true", help="download again even if cached")

    e = sub.add_parser("boot", help="boot a copy of an image on an emulated 64-bit Arm machine and check it",
                       description="Boot a throwaway copy of IMAGE under qemu-system-aarch64 (-M virt, no network), "
                                   "watch first boot and the gate, power off, read the disk, print a verdict (exit 1: FAIL).")
    e.add_argument("image", type=Path, metavar="IMAGE", help="an image made by 'maskgate image build', or a card flashed to a file")
    e.add_argument("--timeout", type=float, default=1800, metavar="SECONDS", help="give up after this long (default: %(default)s)")
    e.add_argument("--kernel", type=Path, metavar="FILE", help="arm64 kernel (default: kernel8.img on the boot partition)")
    e.add_argument("--initrd", type=Path, metavar="FILE", help="its initramfs (default: initramfs8 on the boot partition)")
    e.add_argument("--keep", type=Path, metavar="FILE", help="keep the booted copy of the disk here")
    e.add_argument("--memory", type=int, default=2048, metavar="MiB", help="memory of the machine (default: %(default)s)")
    e.add_argument("--cpus", type=int, default=2, metavar="N", help="its CPUs (default: %(default)s)")
    e.add_argument("--console", action="store_true", help="print the serial console as it comes")


def main(args) -> int:
    from maskgate.deploy import progress

    progress.set_shown(not args.quiet)
    return {"build": _build, "flash": _flash, "wheelhouse": _wheelhouse, "boot": _boot}[args.image_command](args)


def _build(args) -> int:
    from maskgate.deploy.build import BuildOptions, build

    manifest = build(BuildOptions(
        base=args.base, out=args.out, config=args.config, wheelhouse=args.wheelhouse, wheel=args.wheel,
        extras=args.extra, allow_missing_deps=args.allow_missing_deps, allow_missing_models=args.allow_missing_models,
        refresh_wheelhouse=args.refresh_wheelhouse, reserve=args.reserve,
    ))
    wh = manifest["wheelhouse"]
    print(f"built {args.out}: {manifest['base']['os']} + maskgate {manifest['maskgate_version']}, "
          f"{len(wh['wheels'])} wheels (offline install: {wh['offline_check']}), "
          f"user {manifest['service_user']['name']} uid {manifest['service_user']['uid']}")
    print(f"  {args.out}.bmap, {args.out}.manifest.json")
    return 0


def _flash(args) -> int:
    from maskgate.deploy import fleet, flash, provision
    from maskgate.errors import DeployError

    if args.bmap and args.no_bmap:
        raise DeployError("--bmap and --no-bmap contradict each other")
    if not args.fleet and not args.config:
        raise DeployError("flash needs --config DEVICE.toml (one card) or --fleet FLEET.csv")
    if not args.fleet and not args.device:
        raise DeployError("flash needs --device DEV (the card, or a file)")
    image = flash.open_image(args.image, bmap_path=args.bmap, use_bmap=not args.no_bmap)
    if args.fleet:
        template = provision.load_file(args.config) if args.config else None
        cards = fleet.load(args.fleet, template, args.device, image.defaults_text)
        results = fleet.flash_all(image, cards, yes=args.yes, settings_only=args.settings_only)
        print(fleet.summary(results))
        return 0 if all(not r.error for r in results) else 1
    rendered = provision.render(provision.load_file(args.config), image.defaults_text)
    r = flash.flash(image, args.device, rendered, yes=args.yes, settings_only=args.settings_only)
    done = "settings rewritten" if args.settings_only else f"{r.written >> 20} MiB written and verified"
    print(f"{r.target}: '{r.name}' {done}; {len(r.settings)} settings files on the boot partition")
    return 0


def _wheelhouse(args) -> int:
    import tempfile

    from maskgate.deploy import targets, wheelhouse

    target = targets.for_codename(args.release)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or wheelhouse.build_project_wheel(Path(tmp), 0)
        reqs = wheelhouse.requirements(Path(wheel)) + list(target.extras if args.extra is None else args.extra)
    folder = wheelhouse.download(target, reqs, refresh=args.refresh)
    print(folder)
    return 0


def _boot(args) -> int:
    from maskgate.deploy import emulate

    report = emulate.boot(emulate.BootOptions(
        image=args.image, timeout=args.timeout, kernel=args.kernel, initrd=args.initrd, keep=args.keep,
        memory_mib=args.memory, cpus=args.cpus, echo=args.console,
    ))
    print(report.summary())
    return 0 if report.ok else 1
