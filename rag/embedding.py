"""The embedder seam: texts in, L2-normalised float32 vectors out.

A model folder that `rag models` exported to ONNX (models/onnx_export.py) is run by ONNX
Runtime with the `tokenizers` library, which start in a fraction of the time torch and
sentence-transformers take to import; any other model is loaded by sentence-transformers.
Both give the same vectors (tests/test_onnx_embedder.py).
"""

from __future__ import annotations

import json
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


class OnnxEmbedder:
    """A sentence-transformers folder run through its ONNX export: the tokenizer, the prompts
    and the length limit are the folder's own, and the graph holds the whole model (encoder,
    pooling, any dense layers, normalisation), so the output is sentence-transformers'."""

    def __init__(self, folder: Path, model_file: Path, threads: int) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        try:
            config = _read_json(folder / "config_sentence_transformers.json")
            prompts = config.get("prompts") or {}
            self._max_length = int(_read_json(folder / "sentence_bert_config.json")["max_seq_length"])
            self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
            tokenizer_config = _read_json(folder / "tokenizer_config.json")
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            # Threads that spin between calls take the cores llama.cpp is decoding on.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.add_session_config_entry("session.inter_op.allow_spinning", "0")
            self._session = onnxruntime.InferenceSession(str(model_file), options,
                                                         providers=["CPUExecutionProvider"])
        except Exception as error:  # a damaged file: ORT, tokenizers and json raise many types
            raise RagError(f"cannot load embedder {folder}: {str(error).splitlines()[0]} "
                           f"(run `rag models` to provision it again)") from None
        # As the folder's tokenizer does in transformers: "<s>" in a text is text, not a control token.
        self.tokenizer.encode_special_tokens = bool(tokenizer_config.get("split_special_tokens"))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        pad = tokenizer_config.get("pad_token")
        self._pad_id = self.tokenizer.token_to_id(pad) if isinstance(pad, str) else 0
        self._specials = self.tokenizer.num_special_tokens_to_add(False)
        self.id = folder.name
        self.dim = int(self._session.get_outputs()[0].shape[-1])
        self.query_prompt = prompts.get("query", "")
        self.passage_prompt = next((prompts[p] for p in ("passage", "document") if p in prompts), "")

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, self.query_prompt, 32)

    def encode_passages(self, texts: list[str], batch_size: int = 32,
                        show_progress: bool = False) -> np.ndarray:
        return self._encode(texts, self.passage_prompt, batch_size)

    def token_ids(self, texts: list[str], prompt: str) -> list[list[int]]:
        """What sentence-transformers feeds the model: prompt + text, cut to the
        folder's max_seq_length with the special tokens kept."""
        encodings = self.tokenizer.encode_batch([prompt + text for text in texts],
                                                add_special_tokens=False)
        ids = []
        for encoding in encodings:
            encoding.truncate(self._max_length - self._specials)
            ids.append(self.tokenizer.post_process(encoding).ids)
        return ids

    def _encode(self, texts: list[str], prompt: str, batch_size: int) -> np.ndarray:
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        ids = self.token_ids(texts, prompt)
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))  # little padding per batch
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            width = max(len(ids[row]) for row in rows)
            input_ids = np.full((len(rows), width), self._pad_id, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for line, row in enumerate(rows):
                input_ids[line, :len(ids[row])] = ids[row]
                mask[line, :len(ids[row])] = 1
            vectors[rows] = self._session.run(None, {"input_ids": input_ids, "attention_mask": mask})[0]
        return vectors


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def load_embedder(name_or_path: str, threads: int) -> Embedder:
    """The ONNX export of a folder when `rag models` made one that is still current, else
    sentence-transformers."""
    from models.onnx_export import current_export

    folder = Path(name_or_path)
    exported = current_export(folder) if folder.is_dir() else None
    if exported is not None:
        return OnnxEmbedder(folder, exported, threads)
    return SentenceTransformerEmbedder(name_or_path, threads)
