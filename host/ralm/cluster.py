"""Local anole servers as subprocesses (memory nodes, LLM nodes) for the demo and benchmarks; all of them
are stopped on exit, also on Ctrl-C or an error (SIGINT, then SIGKILL after a grace period)."""
from __future__ import annotations

import logging
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

from host.spec.errors import AnoleError

log = logging.getLogger(__name__)
READY = re.compile(r"listening on (\S+):(\d+)")


class ClusterError(AnoleError):
    """A server did not start; the message holds the tail of its log."""


def _default_sigint() -> None:
    """In the child: SIGINT stops the server even when the demo was started with SIGINT ignored (nohup, &)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class LocalCluster:
    """``with LocalCluster(logdir) as c: addr = c.start("memory node 0", ["serve", "memory-node", ...])``."""

    def __init__(self, logdir: str | Path):
        self.logdir = Path(logdir)
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.procs: list[tuple[str, subprocess.Popen, Path]] = []

    def __enter__(self) -> "LocalCluster":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        """Start ``anole ARGS`` (it must print 'listening on HOST:PORT' when ready); see ``wait_ready``."""
        logfile = self.logdir / (re.sub(r"\W+", "-", name).strip("-") + ".log")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with open(logfile, "w") as stderr:       # the child keeps its own copy of the descriptor
            proc = subprocess.Popen([sys.executable, "-m", "host.cli", *args], stdout=subprocess.PIPE,
                                    stderr=stderr, text=True, env=env, start_new_session=True,
                                    preexec_fn=_default_sigint)
        self.procs.append((name, proc, logfile))
        return proc

    def wait_ready(self, proc: subprocess.Popen, timeout: float = 180.0) -> str:
        """'host:port' once the server printed its ready line; ClusterError if it exits or times out."""
        name, _, logfile = next(p for p in self.procs if p[1] is proc)
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if sel.select(timeout=0.2):
                    line = proc.stdout.readline()
                    m = READY.search(line or "")
                    if m:
                        return f"{m.group(1)}:{m.group(2)}"
                    if not line and proc.poll() is not None:
                        break
                elif proc.poll() is not None:
                    break
        finally:
            sel.close()
        tail = "".join(logfile.read_text(errors="replace").splitlines(keepends=True)[-8:])
        state = f"exited with status {proc.returncode}" if proc.poll() is not None else f"not ready in {timeout:.0f} s"
        raise ClusterError(f"{name} {state}; the end of {logfile}:\n{tail}")

    def start(self, name: str, args: list[str], timeout: float = 180.0) -> str:
        return self.wait_ready(self.spawn(name, args), timeout)

    def alive(self) -> list[str]:
        return [n for n, p, _ in self.procs if p.poll() is None]

    def stop(self, grace: float = 10.0) -> None:
        """SIGINT every server (they close their sockets and exit), SIGKILL what is left after ``grace`` s."""
        for _, p, _ in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        deadline = time.monotonic() + grace
        for name, p, _ in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0f s; killing it", name, grace)
                p.kill()
                p.wait()
            if p.stdout:
                p.stdout.close()
        self.procs.clear()
