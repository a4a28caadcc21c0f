"""The engine: requests in, tokens out. `step()` = schedule, run, postprocess (as in nano-vllm)."""
from __future__ import annotations

import logging

import torch
from tqdm import tqdm

from llm_node.config import EngineConfig
from llm_node.engine.block_manager import BlockManager
from llm_node.engine.model_runner import ModelRunner
from llm_node.engine.sampler import sample
from llm_node.engine.scheduler import Batch, Scheduler, SchedulerPolicy
from llm_node.engine.sequence import SamplingParams, Sequence
from llm_node.errors import RequestError

log = logging.getLogger(__name__)


class LLMEngine:
    """Continuous-batching inference over a paged KV cache. Not thread-safe: one thread calls it."""

    def __init__(self, config: EngineConfig, policy: SchedulerPolicy | None = None):
        self.config = config
        self.runner = ModelRunner(config)
        self.model_config = mc = self.runner.model.config
        self.max_model_len = min(config.max_model_len or mc.max_position_embeddings, mc.max_position_embeddings)
        self.block_manager = BlockManager(config.num_kv_blocks, config.block_size, config.enable_prefix_caching)
        self.scheduler = Scheduler(self.block_manager, config.max_num_seqs, config.max_num_batched_tokens,
                                   self.max_model_len, mc.eos_token_ids, policy)
        self.generator = torch.Generator(config.device).manual_seed(config.seed)
        self.seqs: dict[int, Sequence] = {}

    def add_request(self, prompt_ids: list[int], params: SamplingParams | None = None,
                    arrival: float | None = None, slo=None) -> Sequence:
        """Queue a request (arrival: the scheduler's clock, default now; slo: an `llm_node.sched.slo.SLO`
        for SLO-aware policies, None for best effort). RequestError, the engine state unchanged, if it
        cannot be served."""
        params = params or SamplingParams()
        if not isinstance(params, SamplingParams):
            raise RequestError(f"params must be SamplingParams, not {type(params).__name__}")
        ids = self.check_prompt(prompt_ids)
        need = self.block_manager.blocks_for(min(len(ids) + params.max_tokens, self.max_model_len))
        if need > self.config.num_kv_blocks:
            raise RequestError(f"the request needs {need} KV blocks, the cache has {self.config.num_kv_blocks}")
        seq = Sequence(ids, params, self.scheduler.clock() if arrival is None else arrival)
        seq.slo = slo
        if params.seed is not None:
            seq.generator = torch.Generator(self.config.device).manual_seed(params.seed)
        self.seqs[seq.seq_id] = seq
        self.scheduler.add(seq)
        return seq

    def check_prompt(self, prompt_ids) -> list[int]:
        """The prompt as a list of ints; RequestError if empty, out of vocabulary or too long."""
        ids = self._check_ids(prompt_ids)
        if len(ids) >= self.max_model_len:
            raise RequestError(f"prompt of {len(ids)} tokens leaves no room in a context of {self.max_model_len}")
        return ids

    def _check_ids(self, prompt_ids) -> list[int]:
        try:
            ids = [int(t) for t in prompt_ids]
        except (TypeError, ValueError):
            raise RequestError(f"prompt ids must be integers, not {prompt_ids!r:.80}") from None
        if not ids:
            raise RequestError("empty prompt")
        bad = [t for t in ids if not 0 <= t < self.model_config.vocab_size]
        if bad:
            raise RequestError(f"token id {bad[0]} is outside the vocabulary [0, {self.model_config.vocab_size})")
        return ids

    def abort(self, seq_id: int) -> None:
        """Stop a request and free its KV blocks (no-op if unknown or finished)."""
        seq = self.seqs.pop(seq_id, None)
        if seq is not None:
            self.scheduler.abort(seq)

    def has_unfinished(self) -> bool:
        return self.scheduler.has_unfinished()

    def step(self) -> list[tuple[Sequence, int]]:
        """One engine step: schedule, run, postprocess. Returns (sequence, new token) for every token
        produced; finished sequences (seq.finished, seq.finish_reason) leave the engine's table."""
        batch = self.scheduler.schedule()
        if not batch.seqs:
            return []
        seqs, tokens = self.run_batch(batch)
        return self.postprocess(batch, seqs, tokens)[0]

    @torch.no_grad()
    def run_batch(self, batch: Batch) -> tuple[list[Sequence], list[int]]:
        """The compute half of a step (model, logits processors, hidden capture, sampling); touches no
        queue, so a partition's worker thread may call it. Returns the sequences whose last token was
        computed and their sampled tokens; a failed logits processor sets seq.error (postprocess then
        ends that request)."""
        rows, hidden, logits = self.runner.run(batch)
        seqs = [batch.seqs[i] for i in rows]
        for j, seq in enumerate(seqs):  # two-phase hooks: every submit of the batch before any result is awaited
            submit = getattr(seq.params.logits_processor, "submit", None)
            if submit is not None:
                try:
                    submit(list(seq.token_ids), logits[j], hidden[j])
                except Exception as e:  # noqa: BLE001
                    log.warning("logits processor of request %d failed: %r", seq.seq_id, e)
                    seq.error = f"logits processor failed: {e!r}"
        for j, seq in enumerate(seqs):
            if seq.params.logits_processor is not None and seq.error is None:
                try:
                    row = logits[j]
                    new = seq.params.logits_processor(list(seq.token_ids), row, hidden[j])
                    if new is not row:  # one kernel per request saved where the row was changed in place
                        row.copy_(new)
                except Exception as e:  # a faulty hook ends its own request only
                    log.warning("logits processor of request %d failed: %r", seq.seq_id, e)
                    seq.error = f"logits processor failed: {e!r}"
        tokens = sample(logits, seqs, self.generator)
        for j, seq in enumerate(seqs):
            if seq.params.return_hidden:
                seq.hidden_states.append(hidden[j].float().cpu())
        return seqs, tokens

    def postprocess(self, batch: Batch, seqs: list[Sequence], tokens: list[int]
                    ) -> tuple[list[tuple[Sequence, int]], list[Sequence]]:
        """Apply run_batch's results through the scheduler: ((sequence, token) per token produced, the
        sequences that finished, failed ones included)."""
        sampled = {s.seq_id: t for s, t in zip(seqs, tokens) if s.error is None}
        finished = self.scheduler.postprocess(batch, sampled)
        for seq in seqs:
            if seq.error is not None:
                self.scheduler.abort(seq)
                seq.finish_reason = "error"
                finished.append(seq)
            if seq.finished:
                self.seqs.pop(seq.seq_id, None)
        return [(s, t) for s, t in zip(seqs, tokens) if s.seq_id in sampled], finished

    def generate(self, prompts: list[list[int]], params: SamplingParams | list[SamplingParams] | None = None,
                 progress: bool = False) -> list[Sequence]:
        """Run prompts to completion with continuous batching; sequences in prompt order."""
        params = params if isinstance(params, list) else [params] * len(prompts)
        now = self.scheduler.clock()
        seqs = [self.add_request(p, sp, arrival=now) for p, sp in zip(prompts, params)]
        with tqdm(total=len(seqs), disable=not progress, desc="generate") as bar:
            while self.has_unfinished():
                bar.update(sum(s.finished for s, _ in self.step()))
        return seqs

    @torch.no_grad()
    def score(self, token_ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits float32[L, V] and final hidden states [L, H] of every position of a text (perplexity,
        kNN-LM datastores), through the same paged path; uses free KV blocks and returns them."""
        seq = Sequence(self._check_ids(token_ids), SamplingParams())
        if len(seq) > self.max_model_len:
            raise RequestError(f"text of {len(seq)} tokens exceeds the context of {self.max_model_len}")
        if not self.block_manager.grow(seq, len(seq)):
            raise RequestError(f"text of {len(seq)} tokens does not fit in the free KV blocks")
        try:
            batch = Batch()
            batch.add(seq, len(seq))
            _, hidden, logits = self.runner.run(batch, all_tokens=True)
        finally:
            self.block_manager.free(seq)
        return logits, hidden

    @torch.no_grad()
    def score_many(self, texts: list[list[int]], batch_size: int = 32,
                   return_logits: bool = True) -> list[tuple[torch.Tensor | None, torch.Tensor]]:
        """Like ``score`` for many texts at once: (logits float32[L_i, V] or None, hidden [L_i, H]) per text.
        Runs the model's dense causal path in padded batches, without the KV cache (datastores, perplexity)."""
        texts = [self._check_ids(t) for t in texts]
        too_long = [len(t) for t in texts if len(t) > self.max_model_len]
        if too_long:
            raise RequestError(f"text of {too_long[0]} tokens exceeds the context of {self.max_model_len}")
        model, device, out = self.runner.model, self.runner.device, []
        for lo in range(0, len(texts), batch_size):
            group = texts[lo: lo + batch_size]
            width = max(map(len, group))
            ids = torch.zeros(len(group), width, dtype=torch.long)
            for i, t in enumerate(group):
                ids[i, :len(t)] = torch.tensor(t)     # right padding: causal attention never sees it
            pos = torch.arange(width).expand(len(group), width)
            hidden = model(ids.to(device), pos.to(device), None)
            logits = model.compute_logits(hidden).float() if return_logits else None
            for i, t in enumerate(group):
                out.append((None if logits is None else logits[i, :len(t)], hidden[i, :len(t)]))
        return out
