"""TextStream (deltas, stop strings across token boundaries, incomplete UTF-8) and the chat templates."""
import json

from host.api.text import DEFAULT_CHAT_TEMPLATE, ChatTemplate, TextStream

BYTES = {i: bytes([i]) for i in range(256)}


def decode(ids):
    """A byte-level stand-in decoder: one token per byte, invalid UTF-8 shown as U+FFFD."""
    return b"".join(BYTES[i] for i in ids).decode("utf-8", errors="replace")


def run(text: str, stop: list[str]) -> tuple[list[str], str, bool]:
    ts = TextStream(decode, stop)
    deltas = [ts.push(b) for b in text.encode()]
    return [d for d in deltas if d], ts.flush(), ts.stopped


def test_without_stop_the_deltas_are_the_text():
    deltas, tail, stopped = run("héllo wörld", [])
    assert "".join(deltas) + tail == "héllo wörld" and not stopped
    assert all("\ufffd" not in d for d in deltas)             # a two-byte character is held until complete


def test_stop_string_across_tokens_ends_the_text_before_it():
    for text, stop, want in [("abc STOP def", ["STOP"], "abc "), ("aaXYbb", ["zz", "XY"], "aa"),
                             ("no match here", ["QQ"], "no match here"), ("STOPx", ["STOP"], "")]:
        deltas, tail, stopped = run(text, stop)
        assert "".join(deltas) + tail == want and stopped == (want != text)
        assert all(stop[-1][:2] not in d for d in deltas)


def test_eos_token_is_not_text():
    ts = TextStream(lambda ids: "".join("<eos>" if i == 0 else chr(96 + i) for i in ids), [], frozenset({0}))
    out = "".join(ts.push(t) for t in [1, 2, 3, 0]) + ts.flush()
    assert out == "abc"


def test_chat_templates(tmp_path):
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert ChatTemplate(tmp_path).render(messages) == "system: be brief\nuser: hi\nassistant:"
    chatml = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
              "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": chatml}))
    t = ChatTemplate(tmp_path)
    assert t.source != DEFAULT_CHAT_TEMPLATE
    assert t.render(messages[1:]) == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_incremental_decoding_equals_decoding_everything_and_stays_linear():
    import numpy as np

    rng = np.random.default_rng(0)
    text = "".join(rng.choice(list("ab cdé€\n😀")) for _ in range(3000))
    calls = []

    def counting(ids):
        calls.append(len(ids))
        return decode(ids)
    ts = TextStream(counting, [])
    out = "".join(ts.push(b) for b in text.encode()) + ts.flush()
    assert out == text
    assert sum(calls) < 10 * len(text.encode())     # no re-decoding of the whole text per token
