"""Text around the token stream: incremental detokenization with OpenAI ``stop`` strings, and chat templates."""
from __future__ import annotations

import json
from pathlib import Path

from jinja2.sandbox import ImmutableSandboxedEnvironment

DEFAULT_CHAT_TEMPLATE = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                         "{% if add_generation_prompt %}assistant:{% endif %}")
"""Used when the checkpoint's tokenizer_config.json has no ``chat_template`` (the demo GPT-2 has none)."""


class TextStream:
    """Turns token ids into text deltas; ends the text before the first ``stop`` string.

    Decodes incrementally as vLLM does (only the tokens since the last complete character, so a token costs
    the same at position 10 and 10,000). ``push(token)`` returns the text that is safe to show now: it holds
    back an incomplete UTF-8 character and any tail that could still become a stop string; ``skip_ids`` (the
    end-of-sequence tokens) are not text. ``stopped`` is set once a stop string appeared; ``flush()`` returns
    the rest at the end of the generation."""

    def __init__(self, decode, stop: list[str], skip_ids: frozenset[int] = frozenset()):
        self.decode, self.stop, self.skip_ids = decode, [s for s in stop if s], skip_ids
        self.ids: list[int] = []
        self.full = ""              # the text of ids[:read]
        self.sent = ""
        self.stopped = False
        self._prefix = self._read = 0
        self._hold = max((len(s) for s in self.stop), default=1) - 1

    @property
    def text(self) -> str:
        return self.sent

    def push(self, token: int) -> str:
        if self.stopped or token in self.skip_ids:
            return ""
        self.ids.append(token)
        self._decode_new(final=False)
        full = self.full
        for s in self.stop:
            at = full.find(s, max(0, len(self.sent) - len(s) + 1))
            if at >= 0:
                self.stopped = True
                return self._advance(full[:at])
        return self._advance(full[:max(len(self.sent), len(full) - self._hold)])

    def flush(self) -> str:
        if self.stopped:
            return ""
        self._decode_new(final=True)
        return self._advance(self.full)

    def _decode_new(self, final: bool) -> None:
        before = self.decode(self.ids[self._prefix:self._read])
        text = self.decode(self.ids[self._prefix:])
        if len(text) > len(before) and (final or not text.endswith("\ufffd")):
            self.full += text[len(before):]
            self._prefix, self._read = self._read, len(self.ids)

    def _advance(self, text: str) -> str:
        if len(text) <= len(self.sent) or not text.startswith(self.sent):
            return ""
        delta, self.sent = text[len(self.sent):], text
        return delta


class ChatTemplate:
    """Renders OpenAI chat messages into a prompt with the checkpoint's Jinja chat template (as transformers
    does: tokenizer_config.json ``chat_template``, sandboxed) or ``DEFAULT_CHAT_TEMPLATE``."""

    def __init__(self, model_dir: str | Path | None, template: str | None = None):
        cfg = {}
        path = Path(model_dir) / "tokenizer_config.json" if model_dir is not None else None
        if path is not None and path.is_file():
            cfg = json.loads(path.read_text())
        self.source = template or cfg.get("chat_template") or DEFAULT_CHAT_TEMPLATE
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        self._template = env.from_string(self.source)
        self._special = {k: cfg.get(k) for k in ("bos_token", "eos_token")}

    def render(self, messages: list[dict]) -> str:
        return self._template.render(messages=messages, add_generation_prompt=True, **self._special)
