"""Prometheus metrics of the API and, through it, of the LLM node and the memory nodes (``/metrics``).

The API's own request metrics are observed as requests run; the nodes' state (running and waiting sequences,
KV-cache use, per-node counters) is read from their INFO / STATS answers at each scrape (``refresh``)."""
from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
STAGE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
NODE_COUNTERS = ("requests", "queries", "codes", "scan_s", "errors")


class ApiMetrics:
    """One registry per API server (tests run several in a process)."""

    def __init__(self):
        self.registry = r = CollectorRegistry()
        self.requests = Counter("anole_api_requests", "HTTP requests by endpoint and outcome",
                                ["endpoint", "outcome"], registry=r)
        self.running = Gauge("anole_api_choices_running", "choices (sequences) being generated", registry=r)
        self.ttft = Histogram("anole_api_time_to_first_token_seconds", "arrival to first token",
                              buckets=LATENCY_BUCKETS, registry=r)
        self.tbt = Histogram("anole_api_time_between_tokens_seconds", "time between consecutive tokens",
                             buckets=LATENCY_BUCKETS, registry=r)
        self.e2e = Histogram("anole_api_e2e_request_latency_seconds", "arrival to last byte of a generation",
                             buckets=LATENCY_BUCKETS, registry=r)
        self.prompt_tokens = Counter("anole_api_prompt_tokens", "prompt tokens of served requests", registry=r)
        self.generation_tokens = Counter("anole_api_generation_tokens", "generated tokens", registry=r)
        self.stage = Histogram("anole_retrieval_stage_seconds", "retrieval stage latency per step",
                               ["datastore", "stage"], buckets=STAGE_BUCKETS, registry=r)
        self.node_scan = Histogram("anole_memory_node_scan_seconds", "scan time reported by each memory node",
                                   ["datastore", "node", "shard"], buckets=STAGE_BUCKETS, registry=r)
        self.node_rpc = Histogram("anole_memory_node_rpc_seconds", "round trip of one scan call to a memory node",
                                  ["datastore", "node", "shard"], buckets=STAGE_BUCKETS, registry=r)
        self.node_errors = Counter("anole_memory_node_errors", "failed scan calls per memory node",
                                   ["datastore", "node"], registry=r)
        self._snapshot: dict = {}
        r.register(_NodeCollector(self))

    def observe_stream(self, times: list[float], t_arrival: float) -> None:
        """Token arrival times (perf_counter seconds) of one choice."""
        if times:
            self.ttft.observe(times[0] - t_arrival)
        for a, b in zip(times, times[1:]):
            self.tbt.observe(b - a)

    def observe_steps(self, datastore: str, steps: list[dict]) -> None:
        for step in steps:
            for stage in ("embed", "queue", "coarse", "network", "scan", "merge", "retrieval"):
                if stage in step:
                    self.stage.labels(datastore, stage).observe(max(0.0, float(step[stage])))

    def set_snapshot(self, snapshot: dict) -> None:
        """``Backend.snapshot()``'s answer."""
        self._snapshot = snapshot

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _NodeCollector:
    """Yields the nodes' state from the last snapshot as gauges and counters."""

    def __init__(self, metrics: ApiMetrics):
        self.metrics = metrics

    def collect(self):
        snap = self.metrics._snapshot
        up = GaugeMetricFamily("anole_node_up", "1 if the node answered the last scrape", labels=["role", "node"])
        yield from self._llm(snap.get("llm", []), up)
        counters = {k: CounterMetricFamily(f"anole_memory_node_{k}", f"memory node counter {k}",
                                           labels=["datastore", "node", "shard"]) for k in NODE_COUNTERS}
        for store, nodes in snap.get("nodes", {}).items():
            for address, stats in nodes:
                up.add_metric(["memory-node", address], 0.0 if stats is None else 1.0)
                for k, fam in counters.items():
                    if stats is not None and k in stats:
                        fam.add_metric([store, address, str(stats.get("shard", "?"))], float(stats[k]))
        yield from counters.values()
        queue = GaugeMetricFamily("anole_coordinator_queue_depth", "search requests waiting for a fan-out",
                                  labels=["datastore"])
        for store, n in snap.get("queues", {}).items():
            queue.add_metric([store], float(n))
        yield queue
        yield up

    @staticmethod
    def _llm(nodes: list[tuple[str, dict | None]], up: GaugeMetricFamily):
        """Per LLM node (label ``node``): its batch, queue and KV-cache use, and its counters."""
        gauges = {"running": "sequences running in the LLM node's batch",
                  "waiting": "sequences waiting for admission (the LLM node's queue)"}
        fams = {key: GaugeMetricFamily(f"anole_llm_node_{key}_sequences", doc, labels=["node"])
                for key, doc in gauges.items()}
        fams["kv"] = GaugeMetricFamily("anole_llm_node_kv_blocks", "KV-cache blocks of the LLM node", labels=["node"])
        fams["usage"] = GaugeMetricFamily("anole_llm_node_kv_cache_usage_ratio", "used fraction of the KV-cache blocks",
                                          labels=["node"])
        counters = {key: CounterMetricFamily(f"anole_llm_node_{key}", f"LLM node counter {key}", labels=["node"])
                    for key in ("requests", "tokens", "aborted", "errors")}
        for address, info in nodes:
            up.add_metric(["llm-node", address], 0.0 if info is None else 1.0)
            if info is None:
                continue
            for key in gauges:
                fams[key].add_metric([address], float(info[key]))
            total, free = float(info["num_kv_blocks"]), float(info["free_kv_blocks"])
            fams["kv"].add_metric([address], total)
            fams["usage"].add_metric([address], (total - free) / total if total else 0.0)
            for key, fam in counters.items():
                if key in info:
                    fam.add_metric([address], float(info[key]))
        yield from fams.values()
        yield from counters.values()
