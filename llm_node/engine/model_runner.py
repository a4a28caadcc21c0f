"""Runs one scheduled batch through the model over the paged KV cache."""
from __future__ import annotations

import logging

import torch

from llm_node.config import EngineConfig
from llm_node.engine.cuda_graphs import DecodeGraphs, PrefillGraphs
from llm_node.engine.scheduler import Batch
from llm_node.layers.attention import AttentionContext, PagedAttention
from llm_node.models.loader import load_model

log = logging.getLogger(__name__)
GRAPH_CONTEXT = 4096  # steps with longer contexts run eagerly (a graph gathers its whole context bucket)


class ModelRunner:
    """Owns the model and the KV cache: kv[0 or 1, layer] is K or V, [(num_blocks + 1) * block_size, KVH, D]
    (the last block is scratch space for the padded rows of CUDA graphs); on CUDA, decode steps and steps of
    whole prompts or chunks run as captured graphs (`config.cuda_graphs`, engine/cuda_graphs.py)."""

    def __init__(self, config: EngineConfig):
        self.device = torch.device(config.device)
        self.block_size = config.block_size
        self.model = load_model(config.model, config.torch_dtype, self.device)
        cfg = self.model.config
        slots = config.num_kv_blocks * config.block_size
        self.kv = torch.zeros(2, cfg.num_layers, slots + config.block_size, cfg.num_kv_heads,
                              cfg.head_dim, dtype=config.torch_dtype, device=self.device)
        layers = [m for m in self.model.modules() if isinstance(m, PagedAttention)]
        assert len(layers) == cfg.num_layers
        for i, attn in enumerate(layers):
            attn.k_cache, attn.v_cache = self.kv[0, i], self.kv[1, i]
        log.info("KV cache: %d blocks of %d tokens, %.1f MiB", config.num_kv_blocks, config.block_size,
                 self.kv.numel() * self.kv.element_size() / 2**20)
        self.graphs = self.prefill_graphs = None
        if self.device.type == "cuda" and config.cuda_graphs:
            longest = min(config.max_model_len or cfg.max_position_embeddings, cfg.max_position_embeddings, slots,
                          GRAPH_CONTEXT)
            # each set has its own buffers and memory pool: a prefill lane and a decode lane replay at once
            self.graphs = self._captured(DecodeGraphs(self.model, slots, config.block_size, config.max_num_seqs,
                                                      longest, self.device))
            self.prefill_graphs = self._captured(PrefillGraphs(self.model, slots, config.block_size,
                                                               config.max_num_batched_tokens, longest, self.device))

    @staticmethod
    def _captured(graphs):
        try:
            graphs.capture()
            return graphs
        except RuntimeError as e:  # those steps run eagerly, as everywhere else
            log.warning("CUDA graph capture failed (%s): %s steps run eagerly", e, graphs.kind)
            return None

    @staticmethod
    def prefill_by_graphs(batch: Batch, graphs: PrefillGraphs) -> tuple[list[int], torch.Tensor, torch.Tensor] | None:
        """A step of prompts (or chunks) only, one graph replay per sequence; None unless every one fits."""
        parts = []
        for seq, n in zip(batch.seqs, batch.num_new):
            part = Batch()
            part.add(seq, n)
            if graphs.pick(part) is None:
                return None
            parts.append(part)
        rows, hidden, logits = [], [], []
        for i, part in enumerate(parts):
            out = graphs.run(part)
            if out is None:  # replays failed on this stream: the sequences done so far are recomputed eagerly
                return None
            rows += [i] * len(out[0])
            hidden.append(out[1])  # [0 or 1, H]
            logits.append(out[2])
        return rows, torch.cat(hidden), torch.cat(logits)

    @torch.no_grad()
    def run(self, batch: Batch, all_tokens: bool = False) -> tuple[list[int], torch.Tensor, torch.Tensor]:
        """Compute the batch's new tokens. Returns (rows, hidden [S, H], logits float32[S, V]): for each
        sequence i in `rows` (those whose last token was computed) the final hidden state and logits of its
        last token. With all_tokens, hidden and logits cover every new token of the (single) sequence."""
        if not all_tokens:
            out = self.graphs.run(batch) if self.graphs is not None else None
            if out is None and self.prefill_graphs is not None:
                out = self.prefill_by_graphs(batch, self.prefill_graphs)
            if out is not None:
                return out
        ids, positions, starts, ends, last, rows = [], [], [], [], [], []
        for i, (seq, n) in enumerate(zip(batch.seqs, batch.num_new)):
            start, end = seq.num_computed_tokens, seq.num_computed_tokens + n
            ids += seq.token_ids[start:end]
            positions += range(start, end)
            starts.append(start)
            ends.append(end)
            if end == len(seq):
                rows.append(i)
                last.append(len(ids) - 1)
        ctx = AttentionContext.build([s.block_table for s in batch.seqs], starts, ends, self.block_size,
                                     self.device)
        hidden = self.model(torch.tensor(ids, device=self.device), torch.tensor(positions, device=self.device),
                            ctx)
        if not all_tokens:
            hidden = hidden[torch.tensor(last, device=self.device, dtype=torch.long)]
        return rows, hidden, self.model.compute_logits(hidden).float()
