"""Our models on tiny random HF checkpoints against `transformers` itself: logits, hidden states, tokens."""
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from llm_node.config import EngineConfig
from llm_node.engine.llm_engine import LLMEngine
from llm_node.engine.sequence import SamplingParams
from llm_node.errors import ModelFormatError
from llm_node.models.loader import load_model

ATOL = 2e-5


def engine(folder, **kw):
    return LLMEngine(EngineConfig(folder, block_size=4, num_kv_blocks=128, **kw))


def prompt(n, seed):
    return torch.randint(3, 100, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def test_prefill_logits_and_hidden_match_transformers(checkpoint):
    hf, folder = checkpoint
    ids = prompt(37, 1)
    with torch.no_grad():
        ref = hf(torch.tensor([ids]), output_hidden_states=True)
    logits, hidden = engine(folder).score(ids)
    torch.testing.assert_close(logits, ref.logits[0], atol=ATOL, rtol=1e-4)
    torch.testing.assert_close(hidden, ref.hidden_states[-1][0], atol=ATOL, rtol=1e-4)


def test_decode_logits_match_transformers(checkpoint):
    """Logits of every decode step (paged cache, block size 4) equal a full forward of the final sequence."""
    hf, folder = checkpoint
    ids, seen = prompt(9, 2), []

    def record(tokens, logits, hidden):
        seen.append(logits.clone())
        return logits

    seq, = engine(folder).generate([ids], SamplingParams(temperature=0, max_tokens=14, ignore_eos=True,
                                                         logits_processor=record, return_hidden=True))
    with torch.no_grad():
        ref = hf(torch.tensor([seq.token_ids]), output_hidden_states=True)
    n = len(ids)
    torch.testing.assert_close(torch.stack(seen), ref.logits[0, n - 1:-1], atol=ATOL, rtol=1e-4)
    torch.testing.assert_close(torch.stack(seq.hidden_states), ref.hidden_states[-1][0, n - 1:-1],
                               atol=ATOL, rtol=1e-4)


def test_greedy_tokens_match_hf_generate(checkpoint):
    hf, folder = checkpoint
    ids = prompt(11, 3)
    ref = hf.generate(torch.tensor([ids]), max_new_tokens=20, do_sample=False, eos_token_id=None,
                      pad_token_id=0)[0, len(ids):].tolist()
    seq, = engine(folder).generate([ids], SamplingParams(temperature=0, max_tokens=20, ignore_eos=True))
    assert seq.completion_ids == ref


def test_mixed_length_batch_equals_each_prompt_alone(checkpoint):
    _, folder = checkpoint
    prompts = [prompt(n, 10 + n) for n in (1, 5, 17, 30, 4, 9)]
    params = SamplingParams(temperature=0, max_tokens=12, ignore_eos=True)
    batched = [s.completion_ids for s in engine(folder).generate(prompts, params)]
    single = engine(folder, enable_prefix_caching=False)
    alone = [single.generate([p], params)[0].completion_ids for p in prompts]
    assert batched == alone


def test_unknown_architecture_is_named(gpt2_checkpoint, tmp_path):
    _, folder = gpt2_checkpoint
    cfg = json.loads((folder / "config.json").read_text())
    cfg["architectures"] = ["MambaForCausalLM"]
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFormatError, match="MambaForCausalLM"):
        load_model(tmp_path)


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.pop("transformer.h.1.mlp.c_fc.bias"), "lacks tensor.*transformer.h.1.mlp.c_fc.bias"),
    (lambda t: t.update({"transformer.ln_f.weight": torch.ones(65)}), "transformer.ln_f.weight.*shape"),
    (lambda t: t.update({"transformer.h.0.extra": torch.ones(2)}), "unexpected tensor 'transformer.h.0.extra'"),
])
def test_missing_or_mismatched_tensor_is_named(gpt2_checkpoint, tmp_path, edit, message):
    _, folder = gpt2_checkpoint
    tensors = load_file(folder / "model.safetensors")
    edit(tensors)
    save_file(tensors, tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text((folder / "config.json").read_text())
    with pytest.raises(ModelFormatError, match=message):
        load_model(tmp_path)


def test_missing_files_are_named(tmp_path):
    with pytest.raises(ModelFormatError, match="config.json"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"], "n_embd": 8,
                                                      "n_layer": 1, "n_head": 2, "vocab_size": 5,
                                                      "n_positions": 8, "layer_norm_epsilon": 1e-5}))
    with pytest.raises(ModelFormatError, match="no \\*.safetensors"):
        load_model(tmp_path)


def test_sharded_checkpoint(llama_checkpoint, tmp_path):
    hf, _ = llama_checkpoint
    hf.save_pretrained(tmp_path, max_shard_size="40KB")
    assert len(list(tmp_path.glob("*.safetensors"))) > 1
    ids = prompt(20, 4)
    with torch.no_grad():
        ref = hf(torch.tensor([ids])).logits[0]
    torch.testing.assert_close(engine(tmp_path).score(ids)[0], ref, atol=ATOL, rtol=1e-4)


def test_original_gpt2_key_names(gpt2_checkpoint, tmp_path):
    """The OpenAI-converted GPT-2 files name tensors `h.0.attn...` and carry causal-mask buffers."""
    hf, folder = gpt2_checkpoint
    tensors = {k.removeprefix("transformer."): v for k, v in load_file(folder / "model.safetensors").items()}
    tensors["h.0.attn.bias"] = torch.ones(1, 1, 128, 128)
    save_file(tensors, tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text((folder / "config.json").read_text())
    ids = prompt(15, 5)
    with torch.no_grad():
        ref = hf(torch.tensor([ids])).logits[0]
    torch.testing.assert_close(engine(tmp_path).score(ids)[0], ref, atol=ATOL, rtol=1e-4)


def test_bfloat16_engine_runs_close_to_float32(llama_checkpoint):
    _, folder = llama_checkpoint
    ids = prompt(12, 6)
    full, _ = engine(folder).score(ids)
    half, _ = engine(folder, dtype="bfloat16").score(ids)
    assert half.dtype == torch.float32 and (half - full).abs().max() < 0.1 * full.abs().max()
