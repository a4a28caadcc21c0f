"""The official `openai` client against the API: completions and chat, streamed and not, equal to the LLM
node's own greedy output; usage, stop strings, n, seed, max_tokens."""
import pytest

from llm_node.client import LLMClient
from llm_node.tokenizer import Tokenizer

openai = pytest.importorskip("openai")
pytestmark = pytest.mark.timeout(120)
PROMPT = "def decode(self, s):\n    "


@pytest.fixture(scope="module")
def client(api):
    base = api[4]
    with openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def node_greedy(api, tokenized_gpt2):
    """What the LLM node itself generates greedily for a text prompt: (token ids, text without the end-of-sequence
    token, finish reason, prompt tokens)."""
    loop, _, address, _, _ = api
    tok = Tokenizer(tokenized_gpt2)

    async def run(prompt, n):
        llm = await LLMClient.connect(*address.split(":"))
        try:
            items = [i async for i in llm.generate(tok.encode(prompt), max_tokens=n, temperature=0.0)]
            eos_ids = (await llm.info())["eos_token_ids"].tolist()
        finally:
            await llm.close()
        ids = items[-1]["token_ids"].tolist()
        eos = ids[-1:] and ids[-1] in eos_ids and items[-1]["finish_reason"] == "stop"
        return ids, tok.decode(ids[:-1] if eos else ids), items[-1]["finish_reason"], len(tok.encode(prompt))
    return lambda prompt, n: loop.run(run(prompt, n))


def test_models(client):
    models = client.models.list()
    assert [m.id for m in models.data] == ["tiny"]


def test_completion_greedy_equals_the_llm_node(client, node_greedy):
    ids, text, finish, n_prompt = node_greedy(PROMPT, 20)
    r = client.completions.create(model="tiny", prompt=PROMPT, max_tokens=20, temperature=0)
    assert r.choices[0].text == text and r.object == "text_completion"
    assert r.choices[0].finish_reason == ("length" if finish == "length" else "stop")
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (n_prompt, len(ids),
                                                                                        n_prompt + len(ids))


def test_completion_stream_is_the_same_text(client, node_greedy):
    ids, text, _, n_prompt = node_greedy(PROMPT, 20)
    chunks = list(client.completions.create(model="tiny", prompt=PROMPT, max_tokens=20, temperature=0, stream=True,
                                            stream_options={"include_usage": True}))
    deltas = [c.choices[0].text for c in chunks if c.choices]
    assert "".join(deltas) == text and len(deltas) > 2
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("length", "stop")
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == len(ids)
    assert chunks[-1].usage.prompt_tokens == n_prompt
    assert len({c.id for c in chunks}) == 1


def test_chat_with_the_template(client, node_greedy):
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "parse json"}]
    _, text, _, _ = node_greedy("system: be brief\nuser: parse json\nassistant:", 12)
    r = client.chat.completions.create(model="tiny", messages=messages, max_tokens=12, temperature=0)
    assert r.choices[0].message.role == "assistant" and r.choices[0].message.content == text
    stream = client.chat.completions.create(model="tiny", messages=messages, max_tokens=12, temperature=0,
                                            stream=True)
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == text
    assert chunks[-1].choices[0].finish_reason in ("length", "stop") and chunks[-1].object == "chat.completion.chunk"


def test_stop_string_ends_the_text_before_it(client, node_greedy):
    _, text, _, _ = node_greedy(PROMPT, 30)
    stop = text[len(text) // 3: len(text) // 3 + 3]
    assert len(stop) == 3 and "\ufffd" not in stop, f"pick another prompt: {text!r}"
    expected = text[: text.find(stop)]
    r = client.completions.create(model="tiny", prompt=PROMPT, max_tokens=30, temperature=0, stop=[stop, "@@@@"])
    assert r.choices[0].text == expected and r.choices[0].finish_reason == "stop"
    streamed = client.completions.create(model="tiny", prompt=PROMPT, max_tokens=30, temperature=0, stop=stop,
                                         stream=True)
    assert "".join(c.choices[0].text for c in streamed) == expected


def test_n_and_seed(client):
    kw = dict(model="tiny", prompt=PROMPT, max_tokens=10, temperature=1.0, top_p=0.9)
    a = client.completions.create(n=3, seed=7, **kw)
    b = client.completions.create(n=3, seed=7, **kw)
    assert [c.index for c in a.choices] == [0, 1, 2]
    assert [c.text for c in a.choices] == [c.text for c in b.choices]          # seeded: reproducible
    assert len({c.text for c in a.choices}) > 1                                  # seed + index per choice
    lengths = all(c.finish_reason == "length" for c in a.choices)
    assert a.usage.completion_tokens <= 30 and (a.usage.completion_tokens == 30) == lengths
    streamed = client.completions.create(n=3, seed=7, stream=True, **kw)
    texts = ["", "", ""]
    for c in streamed:
        texts[c.choices[0].index] += c.choices[0].text
    assert texts == [c.text for c in a.choices]


def test_token_id_prompt(client, node_greedy, tokenized_gpt2):
    ids = Tokenizer(tokenized_gpt2).encode(PROMPT)
    _, text, _, _ = node_greedy(PROMPT, 8)
    r = client.completions.create(model="tiny", prompt=ids, max_tokens=8, temperature=0)
    assert r.choices[0].text == text and r.usage.prompt_tokens == len(ids)
