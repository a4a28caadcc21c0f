"""The `anole` command: one entry point, a subcommand per job. Only this layer parses argv."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from host.errors import AnoleError

# Each module defines register(subparsers); its parsers set_defaults(func=handler(args) -> int).
COMMAND_MODULES = [
    "host.cli_index",
    "host.cli_search",
    "host.cli_demo",
    "host.cli_serve",
    "host.cli_board",
    "host.cli_rago",
    "host.cli_ralm",
    "llm_node.cli",
    "llm_node.cli_sched",
    "hw.cli",
    "sim.cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="anole", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub, groups)
    return parser


def group(sub, groups: dict, name: str, help: str):
    """The sub-subparsers of a command group such as `anole hw ...`, created once and shared by modules."""
    if name not in groups:
        p = sub.add_parser(name, help=help, description=help)
        groups[name] = p.add_subparsers(dest=f"{name}_command", required=True, metavar="SUBCOMMAND")
    return groups[name]


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
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
