"""What the command modules share: command groups (`anole hw ...`)."""
from __future__ import annotations


def group(sub, groups: dict, name: str, help: str):
    """The sub-subparsers of a command group such as `anole hw ...`, created once and shared by modules."""
    if name not in groups:
        p = sub.add_parser(name, help=help, description=help)
        groups[name] = p.add_subparsers(dest=f"{name}_command", required=True, metavar="SUBCOMMAND")
    return groups[name]


def os_error_text(e: OSError) -> str:
    """One line naming the path(s) of an OSError: 'build/x: File exists'."""
    paths = " -> ".join(str(f) for f in (e.filename, e.filename2) if f is not None)
    reason = e.strerror or str(e)
    return f"{paths}: {reason}" if paths else reason
