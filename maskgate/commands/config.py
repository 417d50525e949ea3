"""Validate config files, or print the reference of every key.

  maskgate config check FILE...   validate (later files override earlier ones); exit 1 on the first error
  maskgate config reference       every key with its type, default and meaning (Markdown)
"""

from __future__ import annotations


def add_arguments(p):
    p.add_argument("action", choices=["check", "reference"])
    p.add_argument("files", nargs="*", metavar="FILE")


def main(args) -> int:
    from maskgate.edge import config

    if args.action == "check":
        config.load(args.files)
        print(f"config OK: {', '.join(args.files) or '(defaults)'}")
        return 0
    print("| key | type | default | meaning |\n|---|---|---|---|")
    for key, tp, default, doc in config.describe():
        print(f"| `{key}` | {tp} | `{default!r}` | {doc} |")
    return 0
