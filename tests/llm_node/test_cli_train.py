"""`anole generate` and `anole llm train` end to end; the trained folder loads in anole and in transformers."""
import json
import sysconfig
from pathlib import Path

import pytest
import torch
import transformers

from host.cli import main
from llm_node.config import EngineConfig
from llm_node.engine.llm_engine import LLMEngine
from llm_node.tokenizer import Tokenizer

CORPUS = Path(sysconfig.get_paths()["stdlib"]) / "json"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    assert main(["llm", "train", "--corpus", str(CORPUS), "--out", str(out), "--steps", "4", "--vocab-size", "400",
                 "--n-embd", "32", "--n-layer", "1", "--n-head", "2", "--context", "32", "--batch-size", "4",
                 "--threads", "2"]) == 0
    return out


def test_generate_json(llama_checkpoint, capsys):
    folder = str(llama_checkpoint[1])
    assert main(["generate", "--model", folder, "--prompt-ids", "5,6,7", "--max-new-tokens", "6", "--greedy",
                 "--ignore-eos", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    engine = LLMEngine(EngineConfig(folder))
    hf = llama_checkpoint[0].generate(torch.tensor([[5, 6, 7]]), max_new_tokens=6, do_sample=False,
                                      eos_token_id=None, pad_token_id=0)
    assert out["token_ids"] == hf[0, 3:].tolist() and out["prompt_ids"] == [5, 6, 7]
    assert out["finish_reason"] == "length" and len(out["timings"]["tbt_s"]) == 5 and out["timings"]["ttft_s"] > 0
    assert engine.model_config.architecture == "LlamaForCausalLM"


@pytest.mark.parametrize("args, message", [
    (["--prompt-ids", "1,x"], "comma-separated integers"),
    (["--prompt-ids", "1,999"], "token id 999 is outside"),
    (["--prompt", "hello"], "no tokenizer"),
    (["--prompt-ids", "1", "--top-p", "2"], "top_p must be in"),
])
def test_generate_bad_input(llama_checkpoint, capsys, args, message):
    assert main(["generate", "--model", str(llama_checkpoint[1]), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_generate_missing_model(tmp_path, capsys):
    assert main(["generate", "--model", str(tmp_path / "nope"), "--prompt-ids", "1"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_trained_model_loads_in_anole_and_transformers(trained, capsys):
    files = {p.name for p in trained.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= files
    log = json.loads((trained / "train_log.json").read_text())
    assert log["steps"] == 4 and log["val_ppl"] > 1
    text = "def dumps(obj, *, indent=None):\n    return obj\n"
    hf_tok = transformers.AutoTokenizer.from_pretrained(trained)
    ids = Tokenizer(trained).encode(text)
    assert hf_tok(text)["input_ids"] == ids and hf_tok.decode(ids) == text
    hf = transformers.AutoModelForCausalLM.from_pretrained(trained).eval()
    with torch.no_grad():
        ref = hf(torch.tensor([ids])).logits[0]
    logits, _ = LLMEngine(EngineConfig(trained)).score(ids)
    torch.testing.assert_close(logits, ref, atol=2e-5, rtol=1e-4)
    assert main(["generate", "--model", str(trained), "--prompt", "import", "--max-new-tokens", "5",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["text"] is not None
    assert main(["llm", "train", "--corpus", str(CORPUS), "--out", str(trained)]) == 0  # cached: no retraining
    assert "already holds a trained model" in capsys.readouterr().out
