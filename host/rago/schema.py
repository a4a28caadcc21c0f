"""RAGSchema: a RAG pipeline (stages, models, resources, SLO) as typed, validated dataclasses from YAML/JSON.

A schema file has the top-level keys ``name``, ``models``, ``stages``, ``resources``, and optionally
``search`` and ``slo``. Stages, in pipeline order: ``rewriter``, ``encoder``, ``retrieval``,
``reranker``, ``prefix``, ``decode`` (``retrieval``, ``prefix`` and ``decode`` are required). See
docs/rago.md and host/rago/paradigms/*.yaml.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from host.rago.coeff import SchemaError, build, check_keys
from host.rago.resources import Resources, SearchSpace, Slo
from llm_node.sched.roofline import DecoderCost

STAGES = ("rewriter", "encoder", "retrieval", "reranker", "prefix", "decode")
"""Stage names in pipeline order."""
ACCEL_STAGES = ("rewriter", "encoder", "reranker", "prefix", "decode")
"""Stages that run a neural model on accelerators (GPUs)."""


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A transformer: ``params_b`` billions of parameters, ``layers``, ``hidden`` width, ``kv_dim`` (K or V
    width per layer; < hidden with grouped-query attention; default hidden). ``latency_model``: a fitted
    latency JSON (host/rago/llm_latency.py) used instead of the roofline when given."""

    name: str
    params_b: float
    layers: int
    hidden: int
    kv_dim: int = 0
    bytes_per_param: float = 2.0
    latency_model: str | None = None
    POSITIVE = ("params_b", "layers", "hidden", "bytes_per_param")
    INTEGER = ("layers", "hidden", "kv_dim")

    def __post_init__(self):
        if not self.kv_dim:
            object.__setattr__(self, "kv_dim", self.hidden)

    @property
    def cost(self) -> DecoderCost:
        """FLOPs and bytes of its forward passes (llm_node/sched/roofline.py)."""
        return DecoderCost(self.params_b * 1e9, self.layers, self.hidden, self.kv_dim, self.bytes_per_param)

    @property
    def weight_bytes(self) -> float:
        return self.cost.weight_bytes

    @property
    def kv_bytes_per_token(self) -> float:
        """K and V of every layer for one token."""
        return self.cost.kv_bytes_per_token


@dataclass(frozen=True, slots=True)
class LLMStage:
    """A model stage. rewriter: prompt_tokens in, output_tokens out (autoregressive). encoder: encodes
    ``prompt_tokens`` document tokens per request. reranker: scores ``candidates`` x ``prompt_tokens``.
    prefix: ``prompt_tokens`` (question + retrieved text). decode: ``output_tokens`` (its context is the
    prefix's prompt)."""

    name: str
    model: ModelSpec
    prompt_tokens: int = 0
    output_tokens: int = 0
    candidates: int = 1
    INTEGER = ("prompt_tokens", "output_tokens", "candidates")
    POSITIVE = ("candidates",)

    @property
    def tokens(self) -> int:
        """Tokens one request puts through a forward pass of this stage (prefill-like stages)."""
        return self.prompt_tokens * self.candidates


@dataclass(frozen=True, slots=True)
class RetrievalStage:
    """IVF-PQ retrieval: ``vectors`` in the database, ``dim``, ``pq_bytes`` per code (+ ``id_bytes``),
    ``nprobe_fraction`` of the database scanned per query, ``k`` results. ``retrievals_per_request``: the
    first before the prefix, the others spread over decoding (iterative retrieval), each adding
    ``retrieved_tokens`` to the context; ``queries_per_retrieval``: query vectors per retrieval."""

    vectors: float
    dim: int
    pq_bytes: int
    nprobe_fraction: float
    k: int = 10
    id_bytes: int = 8
    retrievals_per_request: int = 1
    queries_per_retrieval: int = 1
    retrieved_tokens: int = 0
    POSITIVE = ("vectors", "dim", "pq_bytes", "nprobe_fraction", "k", "retrievals_per_request", "queries_per_retrieval")
    INTEGER = ("dim", "pq_bytes", "k", "id_bytes", "retrievals_per_request", "queries_per_retrieval", "retrieved_tokens")

    def __post_init__(self):
        if self.nprobe_fraction > 1:
            raise SchemaError(f"stages.retrieval.nprobe_fraction must be in (0, 1], not {self.nprobe_fraction!r}")

    @property
    def database_bytes(self) -> float:
        return self.vectors * (self.pq_bytes + self.id_bytes)

    @property
    def codes_per_query(self) -> float:
        return self.vectors * self.nprobe_fraction


@dataclass(frozen=True, slots=True)
class RagSchema:
    """A RAG pipeline with its resources: the input of the performance model and the optimizer."""

    name: str
    stages: dict[str, LLMStage | RetrievalStage]
    resources: Resources
    search: SearchSpace = field(default_factory=SearchSpace)
    slo: Slo = field(default_factory=Slo)
    source: str = "schema"
    models: dict[str, ModelSpec] = field(default_factory=dict)

    @property
    def retrieval(self) -> RetrievalStage:
        return self.stages["retrieval"]

    @property
    def accel_stages(self) -> list[str]:
        """The model stages present, in pipeline order."""
        return [s for s in ACCEL_STAGES if s in self.stages]

    def llm(self, name: str) -> LLMStage:
        return self.stages[name]

    def with_model(self, stages: tuple[str, ...], model: str) -> "RagSchema":
        """A copy whose ``stages`` run ``model`` (a name under ``models``); checked against the resources."""
        if model not in self.models:
            raise SchemaError(f"unknown model {model!r}; defined: {', '.join(self.models)}")
        new = dict(self.stages)
        for s in stages:
            new[s] = replace(new[s], model=self.models[model])
        out = replace(self, stages=new)
        self.resources.check_fits(out)
        return out

    def without(self, stage: str) -> "RagSchema":
        """A copy without the optional stage ``stage`` (rewriter, encoder or reranker)."""
        if stage in ("retrieval", "prefix", "decode"):
            raise SchemaError(f"stage {stage!r} is required")
        return replace(self, stages={k: v for k, v in self.stages.items() if k != stage})


def load_schema(path: str | Path) -> RagSchema:
    """Read a schema from a .yaml/.yml/.json file; SchemaError (naming the field) if it is invalid."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise SchemaError(f"cannot read schema {path}: {e.strerror}") from None
    try:
        d = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as e:
        raise SchemaError(f"{path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {e}") from None
    return parse_schema(d, source=f"schema: {path.name}", base=path.parent)


def parse_schema(d: dict, source: str = "schema", base: Path | None = None) -> RagSchema:
    """Build a RagSchema from a parsed mapping; every error names its field (``stages.prefix.model``)."""
    check_keys("schema", d, {"name", "models", "stages", "resources", "search", "slo"}, {"stages", "resources"})
    models = {}
    for name, m in check_keys("models", d.get("models", {}), set(d.get("models") or {})).items():
        mspec = build(ModelSpec, f"models.{name}", m, source, name=name)
        if mspec.latency_model and base is not None and not Path(mspec.latency_model).is_absolute():
            object.__setattr__(mspec, "latency_model", str(base / mspec.latency_model))
        models[name] = mspec
    stages_in = check_keys("stages", d["stages"], set(STAGES), {"retrieval", "prefix", "decode"})
    stages: dict = {}
    for name in STAGES:
        if name not in stages_in:
            continue
        sd = stages_in[name]
        if name == "retrieval":
            stages[name] = build(RetrievalStage, "stages.retrieval", sd, source)
            continue
        check_keys(f"stages.{name}", sd, {"model", "prompt_tokens", "output_tokens", "candidates"}, {"model"})
        mname = sd["model"]
        if mname not in models:
            raise SchemaError(f"stages.{name}.model: unknown model {mname!r}; defined under models: "
                              f"{', '.join(models) or 'none'}")
        stages[name] = build(LLMStage, f"stages.{name}", {k: v for k, v in sd.items() if k != "model"}, source,
                             name=name, model=models[mname])
    _check_stage_lengths(stages)
    resources = Resources.parse(d["resources"], source)
    search = build(SearchSpace, "search", d.get("search") or {}, source)
    slo = build(Slo, "slo", d.get("slo") or {}, source)
    schema = RagSchema(name=str(d.get("name", "rag")), stages=stages, resources=resources, search=search,
                       slo=slo, source=source, models=models)
    resources.check_fits(schema)
    return schema


def _check_stage_lengths(stages: dict) -> None:
    for name, what in (("rewriter", "output_tokens"), ("encoder", "prompt_tokens"), ("reranker", "prompt_tokens"),
                       ("prefix", "prompt_tokens"), ("decode", "output_tokens")):
        if name in stages and getattr(stages[name], what) < 1:
            raise SchemaError(f"stages.{name}.{what} must be >= 1")
    if stages["prefix"].model is not stages["decode"].model:
        raise SchemaError("stages.decode.model must be the prefix's model "
                          f"({stages['prefix'].model.name!r}, not {stages['decode'].model.name!r})")
    r = stages["retrieval"]
    if r.retrievals_per_request > stages["decode"].output_tokens:
        raise SchemaError(f"stages.retrieval.retrievals_per_request ({r.retrievals_per_request}) exceeds "
                          f"stages.decode.output_tokens ({stages['decode'].output_tokens})")

