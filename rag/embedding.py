"""The embedder seam: texts in, L2-normalised float32 vectors out."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import numpy as np

from .errors import RagError


class Embedder(Protocol):
    id: str  # identifies the model in an index manifest: another id means re-embedding
    dim: int

    def count_tokens(self, text: str) -> int: ...

    def encode_queries(self, texts: list[str]) -> np.ndarray: ...

    def encode_passages(self, texts: list[str], batch_size: int = 32,
                        show_progress: bool = False) -> np.ndarray: ...


class SentenceTransformerEmbedder:
    """Any sentence-transformers model, by hub name (if cached) or folder path.

    Query and passage prompts come from the model's own configuration (`prompts`), so
    E5-style models get `query: ` / `passage: ` and symmetric models get nothing.
    """

    def __init__(self, name_or_path: str, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the network
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # keep stderr for our own progress

        path = Path(name_or_path)
        if path.is_absolute() or name_or_path.startswith("."):
            if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
                raise RagError(f"embedder folder not found or incomplete: {path} (run `rag models` to provision the default)")
        try:
            self.model = SentenceTransformer(name_or_path, device="cpu")
        except Exception as error:  # the library raises many types; all mean "cannot load"
            raise RagError(f"cannot load embedder {name_or_path!r}: {str(error).splitlines()[0]}") from None
        self.id = path.name if path.exists() else name_or_path
        self.dim = int(self.model.get_embedding_dimension())
        self.tokenizer = self.model.tokenizer
        prompts = self.model.prompts or {}
        self._query_prompt = "query" if "query" in prompts else None
        self._passage_prompt = next((p for p in ("passage", "document") if p in prompts), None)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, self._query_prompt, 32, False)

    def encode_passages(self, texts: list[str], batch_size: int = 32,
                        show_progress: bool = False) -> np.ndarray:
        return self._encode(texts, self._passage_prompt, batch_size, show_progress)

    def _encode(self, texts: list[str], prompt_name: str | None, batch_size: int,
                show_progress: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(texts, prompt_name=prompt_name, batch_size=batch_size,
                                    normalize_embeddings=True, convert_to_numpy=True,
                                    show_progress_bar=show_progress)
        return np.ascontiguousarray(vectors, dtype=np.float32)
