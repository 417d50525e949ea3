"""The ``maskgate`` command: one entry point, one subcommand per job.

Each subcommand lives in :mod:`maskgate.commands` as a module with a docstring (its help text),
``add_arguments(parser)`` and ``main(args) -> int``.  Command modules import nothing heavy at module
level, so ``maskgate --help`` is instant and the device never loads TensorFlow.

Errors the user can act on are :class:`~maskgate.errors.MaskgateError`; they are printed as one line,
``maskgate: error: ...``, with exit status 1.  ``--debug`` shows the traceback as well.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from maskgate import __version__
from maskgate.errors import MaskgateError

#: subcommand name -> module under maskgate.commands
COMMANDS = {
    "run": "run",
    "detect": "detect",
    "lock": "lock",
    "clip": "clip",
    "train": "train",
    "seeds": "seeds",
    "detector": "detector",
    "convert": "convert",
    "eval": "evaluate",
    "bench": "bench",
    "image": "image",
    "annotate": "annotate",
    "config": "config",
    "soak": "soak",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="maskgate",
        description="Doorway access control that unlocks only for people wearing a face mask.",
    )
    parser.add_argument("--version", action="version", version=f"maskgate {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"maskgate.commands.{module_name}")
        doc = (module.__doc__ or "").strip()
        summary = doc.splitlines()[0] if doc else name
        p = sub.add_parser(name, help=summary, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_main=module.main)
    return parser


def configure_logging(debug: bool, quiet: bool) -> None:
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if not debug:
        # Native inference libraries and TF are chatty; keep their noise out unless debugging.
        for noisy in ("tensorflow", "absl", "h5py", "matplotlib", "PIL"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.debug, args.quiet)
    try:
        return int(args._main(args) or 0)
    except MaskgateError as exc:
        if args.debug:
            raise
        print(f"maskgate: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("maskgate: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `maskgate detect ... | head`
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
