"""The API server's configuration."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from host.api.protocol import RETRIEVAL_KINDS
from host.net.frames import parse_address
from host.ralm.flows import RalmConfig
from host.spec.errors import InputError


@dataclass(slots=True)
class ApiConfig:
    """The API server: its LLM node, the model folder (tokenizer, chat template), optional datastores with the
    memory nodes serving them, the default retrieval and the request limits."""

    model: Path
    llm_node: str                           # 'H:P' or 'H:P,H:P,...': LLM nodes of one model (llm_node.pool)
    served_model_name: str | None = None
    knn: Path | None = None                 # kNN-LM datastore folder (host.ralm.datastore)
    knn_nodes: list[str] = field(default_factory=list)
    chunks: Path | None = None              # chunk datastore folder
    chunk_nodes: list[str] = field(default_factory=list)
    retrieval: str | None = None            # default per request; None: knn, else chunks, else none
    ralm: RalmConfig = field(default_factory=RalmConfig)
    max_n: int = 8
    max_body_mb: float = 16.0               # larger request bodies get 413 before they are read
    chat_template: str | None = None
    warmup: bool = True
    ssl_certfile: Path | None = None        # PEM certificate (chain): serve HTTPS
    ssl_keyfile: Path | None = None         # its PEM private key (may be inside ssl_certfile)

    def __post_init__(self):
        self.model = Path(self.model)
        nodes = self.llm_nodes
        if not nodes or len(set(nodes)) != len(nodes):
            raise InputError(f"give one or more distinct LLM node addresses H:P,H:P, not {self.llm_node!r}")
        for a in nodes:
            parse_address(a)
        self.served_model_name = self.served_model_name or self.model.name
        if bool(self.knn) != bool(self.knn_nodes) or bool(self.chunks) != bool(self.chunk_nodes):
            raise InputError("give each datastore together with the memory nodes that serve it")
        if self.retrieval is None:
            self.retrieval = "knn" if self.knn else "chunks" if self.chunks else "none"
        needs = {"knn": self.knn, "chunks": self.chunks}
        if self.retrieval not in RETRIEVAL_KINDS or (self.retrieval != "none" and needs[self.retrieval] is None):
            raise InputError(f"default retrieval {self.retrieval!r} needs its datastore (one of {RETRIEVAL_KINDS})")
        if self.ssl_keyfile is not None and self.ssl_certfile is None:
            raise InputError("an ssl keyfile needs its ssl certfile")
        for f in (self.ssl_certfile, self.ssl_keyfile):
            if f is not None and not Path(f).is_file():
                raise InputError(f"no such TLS file: {f}")
        if self.max_body_mb <= 0:
            raise InputError(f"max_body_mb must be > 0, not {self.max_body_mb}")
        if not 1 <= self.max_n <= 64:
            raise InputError(f"max_n must be in 1..64, not {self.max_n}")

    @property
    def llm_nodes(self) -> list[str]:
        return [a.strip() for a in self.llm_node.split(",") if a.strip()]
