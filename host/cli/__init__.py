"""The `anole` command: one entry point, a subcommand per job. Only this layer parses argv."""
from __future__ import annotations

import argparse
import logging
import sys

from host.cli import board, demo, hw, index, llm, rago, ralm, sched, search, serve, sim
from host.cli.common import os_error_text
from host.spec.errors import AnoleError

# Each module defines register(subparsers); its parsers set_defaults(func=handler(args) -> int).
COMMAND_MODULES = [index, search, demo, serve, board, rago, ralm, llm, sched, hw, sim]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="anole", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    for module in COMMAND_MODULES:
        module.register(sub, groups)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for noisy in ("faiss.loader", "numba", "httpx", "sentence_transformers"):
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
