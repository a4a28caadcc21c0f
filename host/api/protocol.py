"""The OpenAI request bodies the API accepts (pydantic, as FastAPI validates them) and the response objects.

Field names, defaults and ranges follow the OpenAI API reference; ``retrieval`` is anole's extra body field
(docs/api.md). Fields OpenAI clients send with neutral values (``presence_penalty=0``, ``user``, ...) are
accepted; non-neutral values of what is not supported are refused with a 400 naming the field."""
from __future__ import annotations

import time
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, model_validator

Number = StrictInt | StrictFloat
RETRIEVAL_KINDS = ("none", "knn", "chunks")


class Retrieval(BaseModel):
    """Retrieval augmentation of one request; unset fields take the server's configuration."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    type: Literal[RETRIEVAL_KINDS] | None = None
    k: StrictInt | None = Field(None, ge=1, le=100)
    nprobe: StrictInt | None = Field(None, ge=1)
    lam: Number | None = Field(None, ge=0, le=1, alias="lambda")
    temperature: Number | None = Field(None, gt=0)
    interval: StrictInt | None = Field(None, ge=1)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_usage: StrictBool = False


class _Sampling(BaseModel):
    """What completions and chat completions share."""

    model_config = ConfigDict(extra="forbid")
    model: StrictStr
    max_tokens: StrictInt | None = Field(None, ge=1)
    temperature: Number = Field(1.0, ge=0, le=2)
    top_p: Number = Field(1.0, gt=0, le=1)
    n: StrictInt = Field(1, ge=1)
    seed: StrictInt | None = None
    stop: StrictStr | list[StrictStr] | None = None
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    user: StrictStr | None = None
    presence_penalty: Literal[0] = 0
    frequency_penalty: Literal[0] = 0
    logit_bias: dict[str, Number] | None = Field(None, max_length=0)
    retrieval: Retrieval | None = None

    def stop_list(self) -> list[str]:
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        if len(stop) > 4:
            raise ValueError("stop takes at most 4 sequences")
        return stop


class CompletionRequest(_Sampling):
    """POST /v1/completions."""

    prompt: StrictStr | list[StrictInt] | list[StrictStr]
    echo: Literal[False] = False
    best_of: Literal[1] | None = None
    logprobs: None = None
    suffix: None = None

    @model_validator(mode="after")
    def _one_prompt(self):
        if isinstance(self.prompt, list) and self.prompt and isinstance(self.prompt[0], str):
            if len(self.prompt) != 1:
                raise ValueError("this server takes one prompt per request (a string or a list of token ids)")
            self.prompt = self.prompt[0]
        if not self.prompt:
            raise ValueError("prompt is empty")
        return self


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: StrictStr
    name: StrictStr | None = None


class ChatCompletionRequest(_Sampling):
    """POST /v1/chat/completions."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: StrictInt | None = Field(None, ge=1)
    logprobs: Literal[False] | None = None


class RetrieveRequest(BaseModel):
    """POST /v1/retrieve: the nearest chunks of the chunk datastore to each query text."""

    model_config = ConfigDict(extra="forbid")
    query: StrictStr | list[StrictStr] = Field(min_length=1)
    k: StrictInt = Field(4, ge=1, le=100)
    nprobe: StrictInt | None = Field(None, ge=1)

    def queries(self) -> list[str]:
        return [self.query] if isinstance(self.query, str) else list(self.query)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def usage(prompt: int, completion: int) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def completion_object(rid: str, model: str, choices: list[dict], use: dict | None, chat: bool) -> dict:
    """A ``text_completion`` / ``chat.completion`` object, or (use=None and a stream) a chunk of one."""
    obj = {"id": rid, "object": "chat.completion" if chat else "text_completion", "created": int(time.time()),
           "model": model, "choices": choices}
    if chat:
        obj["system_fingerprint"] = None
    if use is not None:
        obj["usage"] = use
    return obj


def choice(index: int, text: str | None, finish: str | None, chat: bool, delta: bool = False,
           first: bool = False) -> dict:
    """One entry of ``choices``: ``text`` (completions), ``message`` (chat) or ``delta`` (chat stream)."""
    if not chat:
        return {"index": index, "text": text or "", "logprobs": None, "finish_reason": finish}
    if delta:
        body = ({"role": "assistant", "content": ""} if first else {}) | ({"content": text} if text else {})
        return {"index": index, "delta": body, "logprobs": None, "finish_reason": finish}
    return {"index": index, "message": {"role": "assistant", "content": text, "refusal": None}, "logprobs": None,
            "finish_reason": finish}
