"""The coordinator as a server: T_SEARCH, T_INFO and T_STATS over ``host.net`` for remote clients."""
from __future__ import annotations

import asyncio
import logging
import time

import numpy as np

from host.backends.local_search import SearchResult
from host.index.index_dir import load_index
from host.net.client import RpcClient
from host.net.latency import LatencyWindow
from host.net.lifecycle import bind, serve_node
from host.net.server import RpcNode, RpcServer
from host.serve import wire
from host.serve.coordinator import Coordinator, CoordinatorConfig

log = logging.getLogger(__name__)


class CoordinatorServer(RpcNode):
    """Serves a connected ``Coordinator`` to clients: concurrent T_SEARCH requests share its batches."""

    def __init__(self, coordinator: Coordinator, max_nq: int = 1 << 16, max_frame: int = 64 << 20, *,
                 max_connections: int = 1024, idle_timeout: float | None = 600.0, max_inflight: int = 64,
                 secret: str | None = None):
        self.coordinator, self.max_nq = coordinator, max_nq
        self.latency = LatencyWindow()
        self.server = RpcServer(max_frame=max_frame, max_connections=max_connections, idle_timeout=idle_timeout,
                                max_inflight=max_inflight, secret=secret)
        self.server.register(wire.T_INFO, self._info)
        self.server.register(wire.T_SEARCH, self._search)
        self.server.register(wire.T_STATS, self._stats)

    async def close(self) -> None:
        await super().close()
        await self.coordinator.close()

    async def _info(self, fields: dict) -> dict:
        c = self.coordinator
        return {"role": "coordinator", "fingerprint": c.fingerprint, "d": c.index.d, "nlist": c.index.nlist,
                "nodes": [n.address for n in c.nodes], "topology": str(c.topology), "health": c.health(),
                "params": c.params.to_dict()}

    async def _search(self, fields: dict) -> dict:
        c = self.coordinator
        queries, nprobe, k = wire.parse_search_request(fields, c.index.d, c.index.nlist, c.params.k, self.max_nq)
        t0 = time.perf_counter()
        res = await c.search(queries, nprobe, k)
        self.latency.add(time.perf_counter() - t0)
        return wire.search_response(res)

    async def _stats(self, fields: dict) -> dict:
        return dict(self.coordinator.stats, **self.latency.percentiles("search"))


async def client_search(client: RpcClient, queries: np.ndarray, nprobe: int, k: int,
                        deadline: float | None = None) -> SearchResult:
    """Search through a coordinator: queries float32[nq, d] -> SearchResult; ``deadline``: host.net.deadline."""
    return wire.parse_search_response(await client.call(wire.T_SEARCH, wire.search_request(queries, nprobe, k),
                                                        deadline=deadline))


def run_coordinator(index_path, addresses, host: str, port: int, config: CoordinatorConfig | None = None,
                    on_ready=None, drain_timeout: float = 30.0, server_options: dict | None = None) -> None:
    """Bind, connect to the memory nodes and serve clients until SIGTERM/SIGINT, then drain.
    ``server_options``: keyword arguments of CoordinatorServer (max_connections, idle_timeout, secret...)."""
    sock = bind(host, port)

    async def main():
        coord = Coordinator(load_index(index_path, shards=[]), addresses, config=config)
        try:
            await coord.connect()
        except BaseException:
            await coord.close()
            raise
        await serve_node(CoordinatorServer(coord, **(server_options or {})), host, port, on_ready,
                         drain_timeout=drain_timeout, sock=sock)
    try:
        asyncio.run(main())
    finally:
        sock.close()
