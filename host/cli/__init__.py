"""The `anole` command: one entry point, a subcommand per job. Only this layer parses argv."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from host.cli.common import os_error_text
from host.spec.errors import AnoleError

# Each module defines register(subparsers); its parsers set_defaults(func=handler(args) -> int).
COMMANDS = ["index", "search", "demo", "serve", "cluster", "board", "rago", "ralm", "llm", "api", "sched", "hw", "sim"]
FIRST_PARTY = ("host", "hw", "sim", "llm_node", "hls", "scripts")


def command_modules() -> tuple[list, dict[str, str]]:
    """The command modules that import here, and {command: missing package} for the others: a board image
    (`pip install anole[board]`: numpy and pynq/pyxrt only) has `serve` and `board` but not the simulators."""
    modules, missing = [], {}
    for name in COMMANDS:
        try:
            modules.append(importlib.import_module(f"host.cli.{name}"))
        except ModuleNotFoundError as e:
            if not e.name or e.name.split(".")[0] in FIRST_PARTY:
                raise
            missing[name] = e.name
    return modules, missing


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="anole", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    modules, missing = command_modules()
    for module in modules:
        module.register(sub, groups)
    for name, package in missing.items():
        if name not in groups:
            p = sub.add_parser(name, help=f"(needs {package}: pip install anole[host])", add_help=False)
            p.add_argument("rest", nargs=argparse.REMAINDER)
            p.set_defaults(func=_missing(name, package))
    return parser


def _missing(name: str, package: str):
    def run(args) -> int:
        raise AnoleError(f"`anole {name}` needs {package}, which this install lacks: pip install anole[host]")
    return run


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for noisy in ("faiss.loader", "numba", "httpx", "httpx2", "sentence_transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except AnoleError as e:
        print(f"anole: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:        # a path the user named: unwritable, missing, a file where a folder goes
        print(f"anole: error: {os_error_text(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
