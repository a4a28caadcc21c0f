"""Per-stage latency and throughput of a RAG pipeline as a function of batch size and resources.

Model stages use ``host.rago.llm_latency`` (a fitted profile or the roofline). Retrieval scans
``vectors * nprobe_fraction`` codes per query, split evenly over the nodes (design.md section 1), at::

    cpu_server: min(cores * scan_rate, mem_bw / pq_bytes)              codes/s per server
    fpga:       min(kernels * lanes * efficiency * clock, mem_bw / pq_bytes)

plus a fixed cost per batch (``batch_overhead_us``) and the network: one RPC round trip, the
coordinator's work per batch and the bytes of queries and results. Iterative retrieval
(``retrievals_per_request`` > 1) stalls decoding: see :meth:`PerfModel.decode_residence`.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from host.rago.coeff import Coefficient, SchemaError
from host.rago.llm_latency import latency_model
from host.rago.resources import GB
from host.rago.schema import RagSchema

ENCODER_WINDOW = Coefficient(512, "tokens", "assumption: encoder attention window (BERT-style chunks)")


@dataclass(frozen=True, slots=True)
class RetrievalCost:
    """One retrieval batch on ``nodes`` nodes of ``kind``: seconds split into scan, overhead and network."""

    scan_s: float
    overhead_s: float
    network_s: float

    @property
    def total_s(self) -> float:
        return self.scan_s + self.overhead_s + self.network_s


class PerfModel:
    """Latencies (seconds) of every stage of ``schema``; pure functions of (stage, batch, chips), cached."""

    def __init__(self, schema: RagSchema):
        self.schema = schema
        self.res = schema.resources
        self._lat = {s: latency_model(schema.llm(s).model, self.res.gpu) for s in schema.accel_stages}
        self.stage_latency = lru_cache(maxsize=None)(self._stage_latency)
        self.retrieval = lru_cache(maxsize=None)(self._retrieval)

    def llm_latency(self, stage: str):
        """The stage's latency model (Roofline or FittedLatency)."""
        return self._lat[stage]

    # ---- model stages -------------------------------------------------------------------------------
    @property
    def decode_context(self) -> int:
        """Mean KV-cache length while decoding: the prompt, retrieved text, half the output."""
        r, p, d = self.schema.retrieval, self.schema.llm("prefix"), self.schema.llm("decode")
        return p.prompt_tokens + (r.retrievals_per_request - 1) * r.retrieved_tokens // 2 + d.output_tokens // 2

    def _stage_latency(self, stage: str, batch: int, tp: int) -> float:
        """Seconds for one batch of ``batch`` requests through ``stage`` on a ``tp``-chip instance;
        for ``decode``, one step (one token of every sequence)."""
        st, lat = self.schema.llm(stage), self._lat[stage]
        if stage == "rewriter":
            ctx = st.prompt_tokens + st.output_tokens // 2
            return lat.prefill(batch, st.prompt_tokens, tp) + st.output_tokens * lat.decode_step(batch, ctx, tp)
        if stage == "encoder":
            w = int(ENCODER_WINDOW.value)
            chunks = -(-st.prompt_tokens // w)
            return lat.prefill(batch * chunks, min(w, st.prompt_tokens), tp)
        if stage == "reranker":
            return lat.prefill(batch * st.candidates, st.prompt_tokens, tp)
        if stage == "prefix":
            return lat.prefill(batch, st.prompt_tokens, tp)
        if stage == "decode":
            return lat.decode_step(batch, self.decode_context, tp)
        raise SchemaError(f"unknown stage {stage!r}")

    def reprefill_latency(self, batch: int, tp: int) -> float:
        """Seconds to prefill ``retrieved_tokens`` new tokens for ``batch`` decoding sequences (iterative)."""
        r = self.schema.retrieval
        if not r.retrieved_tokens:
            return 0.0
        return self._lat["decode"].prefill(batch, r.retrieved_tokens, tp, context=self.decode_context)

    def kv_bytes(self, decode_batch: int) -> float:
        """KV cache of a full decode batch at the end of generation."""
        r, p, d = self.schema.retrieval, self.schema.llm("prefix"), self.schema.llm("decode")
        tokens = p.prompt_tokens + (r.retrievals_per_request - 1) * r.retrieved_tokens + d.output_tokens
        return decode_batch * tokens * p.model.kv_bytes_per_token

    def fits(self, stages: tuple[str, ...], tp: int, decode_batch: int = 0) -> bool:
        """Whether the weights of ``stages``' models (and the decode KV cache) fit ``tp`` GPUs (90 % usable)."""
        models = {self.schema.llm(s).model.name: self.schema.llm(s).model for s in stages}
        need = sum(m.weight_bytes for m in models.values()) + (self.kv_bytes(decode_batch) if "decode" in stages else 0)
        return need <= tp * float(self.res.gpu.memory_gb) * GB * 0.9

    # ---- retrieval ----------------------------------------------------------------------------------
    def node_scan_rate(self, kind: str) -> float:
        """Codes/s one node of ``kind`` scans: compute rate bounded by memory bandwidth."""
        r = self.schema.retrieval
        node = getattr(self.res, kind)
        if node is None:
            raise SchemaError(f"resources.{kind} is not given")
        bw_rate = float(node.mem_bw_gbs) * GB / r.pq_bytes
        if kind == "fpga":
            return min(node.scan_rate, bw_rate)
        if node.scan_rate is None:
            raise SchemaError("resources.cpu_server.scan_rate is missing: give it in the schema or pass a "
                              "calibration file (anole rago calibrate)")
        return min(node.cores * float(node.scan_rate), bw_rate)

    def _retrieval(self, kind: str, nodes: int, batch: int) -> RetrievalCost:
        """One retrieval for ``batch`` requests (``batch * queries_per_retrieval`` queries) on ``nodes`` nodes."""
        r, net = self.schema.retrieval, self.res.network
        q = batch * r.queries_per_retrieval
        scan = q * r.codes_per_query / nodes / self.node_scan_rate(kind)
        node = getattr(self.res, kind)
        overhead = (float(node.batch_overhead_us) + q * float(getattr(node, "per_query_us", None) or 0.0)) * 1e-6
        wire = q * (r.dim * 4 + r.k * 16) * nodes / (float(net.bandwidth_gbs) * GB)
        network = (float(net.rpc_latency_us) + float(net.coordinator_us)) * 1e-6 + wire
        return RetrievalCost(scan_s=scan, overhead_s=overhead, network_s=network)

    @property
    def per_token_retrieval(self) -> bool:
        """Retrieval before every output token (kNN-LM: ``retrievals_per_request`` = ``output_tokens``)."""
        return self.schema.retrieval.retrievals_per_request == self.schema.llm("decode").output_tokens

    def decode_residence(self, decode_batch: int, tp: int, replicas: int, kind: str = "", nodes: int = 0,
                         rbatch: int = 1) -> tuple[float, float, float]:
        """(seconds a request holds a decode slot, decode GPU-seconds per request, active fraction).

        A replica holds ``decode_batch`` sequences (slots). Each decodes ``output_tokens`` steps and, with
        iterative retrieval, stalls ``R - 1`` times: it waits for ``rbatch`` retrievals to gather (the
        ``replicas * decode_batch`` slots issue them at rate lam = slots (R-1) / T), for the retrieval and
        the round trip between the decoding instance and the coordinator (t_ret), and for the re-prefill
        batches of its replica (which pause every sequence on it). Only active sequences decode, so a step
        runs a batch of B_a = active fraction x decode_batch::

            T = (out t_step(B_a) + B_d (R-1)/B_r t_prefill(B_r) + (R-1) t_ret(B_r)) / (1 - (B_r-1) / (2 slots))
            GPU time per request = out t_step(B_a) / B_a + (R-1) t_prefill(B_r) / B_r

        Per-token retrieval (kNN-LM) is lock-step instead: every step of a replica's batch sends its
        ``decode_batch`` queries as one retrieval batch and waits for it, so there is no gathering and no
        idle slot (``rbatch`` must equal ``decode_batch``)::

            T = out t_step(B_d) + (R-1) t_ret(B_d);  GPU time per request = out t_step(B_d) / B_d

        Returns infinities when ``rbatch`` exceeds the slots.
        """
        r, out = self.schema.retrieval, self.schema.llm("decode").output_tokens
        lat, ctx = self._lat["decode"], self.decode_context
        stalls = r.retrievals_per_request - 1
        if stalls == 0:
            busy = out * self.stage_latency("decode", decode_batch, tp)
            return busy, busy / decode_batch, 1.0
        slots = replicas * decode_batch
        if rbatch > slots or (self.per_token_retrieval and rbatch != decode_batch):
            return float("inf"), float("inf"), 0.0
        t_ret = self.retrieval(kind, nodes, rbatch).total_s + float(self.res.network.rpc_latency_us) * 1e-6
        if self.per_token_retrieval:
            steps = out * self.stage_latency("decode", decode_batch, tp)
            resid = steps + stalls * t_ret
            return resid, steps / decode_batch, steps / resid
        t_pf = self.reprefill_latency(rbatch, tp)
        active = float(decode_batch)
        for _ in range(8):                                   # fixed point of the active batch
            steps = out * lat.decode_step(active, ctx, tp)
            resid = (steps + decode_batch * stalls / rbatch * t_pf + stalls * t_ret) / (1 - (rbatch - 1) / (2 * slots))
            active = max(1.0, decode_batch * steps / resid)
        return resid, steps / active + stalls * t_pf / rbatch, steps / resid

    # ---- provenance ---------------------------------------------------------------------------------
    def coefficients(self) -> dict[str, Coefficient]:
        """Every coefficient the model uses, by name, with unit and source."""
        out: dict[str, Coefficient] = {}
        for s, lat in self._lat.items():
            out.update({f"{s}.{k}": v for k, v in lat.coefficients().items()})
        for kind in ("cpu_server", "fpga", "network"):
            node = getattr(self.res, kind)
            if node is None:
                continue
            for k in type(node).COEFFS:
                v = getattr(node, k)
                if v is not None:
                    out[f"{kind}.{k}"] = v
        if "encoder" in self._lat:
            out["encoder.window"] = ENCODER_WINDOW
        return out
