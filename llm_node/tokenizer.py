"""The checkpoint's tokenizer (tokenizer.json, read with the `tokenizers` package)."""
from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer as _Tokenizer

from llm_node.errors import ModelFormatError


class Tokenizer:
    """encode(text) -> ids and decode(ids) -> text with the checkpoint's tokenizer.json."""

    def __init__(self, folder: str | Path):
        path = Path(folder) / "tokenizer.json"
        if not path.is_file():
            raise ModelFormatError(f"{str(path)!r} not found: this checkpoint has no tokenizer, pass token ids")
        self._tok = _Tokenizer.from_file(str(path))

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size()

    @property
    def max_token_chars(self) -> int:
        """Characters in the longest vocabulary entry: a text longer than n times this has more than n tokens."""
        return max(map(len, self._tok.get_vocab(with_added_tokens=True)), default=1)

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int]) -> str:
        return self._tok.decode(ids, skip_special_tokens=False)
