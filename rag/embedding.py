"""The embedder seam: texts in, L2-normalised float32 vectors out.

A model folder that `rag models` exported to ONNX (models/onnx_export.py) is run by ONNX
Runtime with the `tokenizers` library, which start in a fraction of the time torch and
sentence-transformers take to import; any other model is loaded by sentence-transformers.
Both give the same vectors (tests/test_onnx_embedder.py).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from .errors import RagError


class Embedder(Protocol):
    id: str  # identifies the model in an index manifest: another id means re-embedding
    dim: int

    def count_tokens(self, text: str) -> int: ...

    def encode_queries(self, texts: list[str]) -> np.ndarray: ...

    def encode_passages(self, texts: list[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray: ...


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
        if (path.is_absolute() or name_or_path.startswith(".")) and not (
            (path / "modules.json").is_file() or (path / "config.json").is_file()
        ):
            raise RagError(
                f"embedder folder not found or incomplete: {path} (run `rag models` to provision the default)"
            )
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

    def encode_passages(self, texts: list[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        return self._encode(texts, self._passage_prompt, batch_size, show_progress)

    def _encode(self, texts: list[str], prompt_name: str | None, batch_size: int, show_progress: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            texts,
            prompt_name=prompt_name,
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=show_progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


class UnigramTokenizer:
    """A Unigram (SentencePiece-style) tokenizer that loads in a fraction of the time of the
    `tokenizers` library's. That library builds a trie of all 250,000 XLM-R pieces, which
    costs several times the CPU and memory of this one (measured in docs/performance.md, "Why the default
    embedder's tokenizer is not the `tokenizers` library"). Here the pieces are a dict read from a
    plain file, and a word's best split is found by the same Viterbi search as the library's
    (same scores, same order of candidates, same tie-breaking, unknown runs fused into one
    <unk>), while normalisation and pre-tokenisation are the library's own objects, from
    the folder's tokenizer.json. Token ids are the library's on every text tested
    (tests/test_onnx_embedder.py); `models/onnx_export.py` writes the files it reads."""

    UNKNOWN_PENALTY = 10.0  # below the lowest piece score, as in sentencepiece and `tokenizers`

    def __init__(self, folder: Path) -> None:
        from functools import lru_cache

        from tokenizers import Tokenizer

        layout = _read_json(folder / UNIGRAM_LAYOUT)
        self._pipeline = Tokenizer.from_str(json.dumps(layout["pipeline"]))
        pieces = (folder / UNIGRAM_PIECES).read_text(encoding="utf-8").split("\0")
        self._ids = dict(zip(pieces, range(len(pieces))))
        self._scores = np.load(folder / UNIGRAM_SCORES).tolist()
        self._longest = int(layout["longest_piece"])
        self._unknown = int(layout["unk_id"])
        self._unknown_score = min(self._scores) - self.UNKNOWN_PENALTY
        self.prefix: list[int] = layout["prefix"]  # special tokens around a text, e.g. <s> … </s>
        self.suffix: list[int] = layout["suffix"]
        self.pad_id = int(layout["pad_id"])
        self._word_ids = lru_cache(maxsize=1 << 16)(self._best_split)

    def encode(self, text: str) -> list[int]:
        """Token ids of a text, without special tokens."""
        normalizer, pre_tokenizer = self._pipeline.normalizer, self._pipeline.pre_tokenizer
        if normalizer is not None:
            text = normalizer.normalize_str(text)
        words = [w for w, _ in pre_tokenizer.pre_tokenize_str(text)] if pre_tokenizer is not None else [text]
        return [token for word in words for token in self._word_ids(word)]

    def _best_split(self, word: str) -> tuple[int, ...]:
        ids, scores, unknown = self._ids, self._scores, self._unknown
        size = len(word)
        best: list[float | None] = [0.0] + [None] * size  # best score of a split of word[:end]
        start = [0] * (size + 1)  # where the last piece of that split starts
        piece = [unknown] * (size + 1)
        for begin in range(size):
            base = best[begin]
            covered = False  # a piece of exactly one character starts here
            for end in range(begin + 1, min(size, begin + self._longest) + 1):
                token = ids.get(word[begin:end])
                if token is None:
                    continue
                score = base + scores[token]
                if best[end] is None or score > best[end]:
                    best[end], start[end], piece[end] = score, begin, token
                covered = covered or end == begin + 1
            if not covered:
                score = base + self._unknown_score
                if best[begin + 1] is None or score > best[begin + 1]:
                    best[begin + 1], start[begin + 1], piece[begin + 1] = score, begin, unknown
        split: list[int] = []
        end = size
        while end > 0:
            if not (piece[end] == unknown and split and split[-1] == unknown):  # fuse unknown runs
                split.append(piece[end])
            end = start[end]
        return tuple(reversed(split))


# What models/onnx_export.py writes beside the graph for UnigramTokenizer.
UNIGRAM_LAYOUT = "tokenizer.json"
UNIGRAM_PIECES = "pieces.txt"
UNIGRAM_SCORES = "scores.npy"


class SentencePieceTokenizer:
    """The folder's SentencePiece model (tokenizer.model), for tokenizers UnigramTokenizer
    does not cover (Gemma's byte-fallback BPE). It loads in a tenth of the time and a fifth
    of the memory of the `tokenizers` library on the same vocabulary's tokenizer.json (see
    docs/embedders.md). What transformers adds around it, `models/onnx_export.py` writes
    beside the graph: the special tokens around a text, the padding id, and the special
    tokens transformers reads in a text (e.g. a literal "<eos>") that SentencePiece would
    spell out; it also checks that the ids are transformers' own."""

    def __init__(self, folder: Path, export: Path) -> None:
        import re

        import sentencepiece

        layout = _read_json(export / SENTENCEPIECE_LAYOUT)
        self._model = sentencepiece.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
        self.prefix: list[int] = layout["prefix"]
        self.suffix: list[int] = layout["suffix"]
        self.pad_id = int(layout["pad_id"])
        self._specials: dict[str, int] = layout["specials"]
        by_length = sorted(self._specials, key=len, reverse=True)
        self._split = re.compile("(" + "|".join(map(re.escape, by_length)) + ")") if by_length else None

    def encode(self, text: str) -> list[int]:
        """Token ids of a text, without special tokens around it."""
        if self._split is None:
            return self._model.encode(text)
        ids: list[int] = []
        for number, part in enumerate(self._split.split(text)):
            if number % 2:
                ids.append(self._specials[part])
            elif part:
                ids.extend(self._model.encode(part))
        return ids


# What models/onnx_export.py writes beside the graph for SentencePieceTokenizer.
SENTENCEPIECE_LAYOUT = "sentencepiece.json"


class OnnxEmbedder:
    """A sentence-transformers folder run through its ONNX export: the tokenizer, the prompts
    and the length limit are the folder's own, and the graph holds the whole model (encoder,
    pooling, any dense layers, normalisation), so the output is sentence-transformers'.

    The export's record (models/onnx_export.py) may name a quantised graph and a shorter
    vector: a Matryoshka model's first `dim` components, normalised again. Both change the
    vectors, so they are part of the embedder's id (an index built otherwise is rebuilt)."""

    def __init__(self, folder: Path, model_file: Path, threads: int) -> None:
        import onnxruntime

        try:
            prompts = _read_json(folder / "config_sentence_transformers.json").get("prompts") or {}
            self._max_length = int(_read_json(folder / "sentence_bert_config.json")["max_seq_length"])
            export = model_file.parent
            self.tokenizer = (
                UnigramTokenizer(export)
                if (export / UNIGRAM_PIECES).is_file()
                else SentencePieceTokenizer(folder, export)
            )
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            # Threads that spin between calls take the cores llama.cpp is decoding on.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.add_session_config_entry("session.inter_op.allow_spinning", "0")
            # Inputs change shape with every text: memory patterns are cached per shape and would
            # grow a long-running server. The arena is kept (the session is slower without it,
            # docs/performance.md) but given back after every run (`_run_options`), so it never
            # holds the largest batch's buffers between calls.
            options.enable_mem_pattern = False
            # public: `rag bench` times the bare session beside the pipeline
            self.session = onnxruntime.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # a damaged file: ORT, tokenizers, numpy and json raise many types
            raise RagError(
                f"cannot load embedder {folder}: {str(error).splitlines()[0]} (run `rag models` to provision it again)"
            ) from None
        full_dim = int(self.session.get_outputs()[0].shape[-1])
        self.dim = min(int(dim), full_dim) if (dim := _export_variant(export).get("dim")) else full_dim
        quantised = model_file.name != "model.onnx"
        variant = [model_file.name.removeprefix("model.").removesuffix(".onnx")] if quantised else []
        variant += [str(self.dim)] if self.dim != full_dim else []
        self.id = "-".join([folder.name, *variant])
        self.query_prompt = prompts.get("query", "")
        self.passage_prompt = next((prompts[p] for p in ("passage", "document") if p in prompts), "")

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text))

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, self.query_prompt, 32)

    def encode_passages(self, texts: list[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        return self._encode(texts, self.passage_prompt, batch_size)

    def token_ids(self, text: str, prompt: str) -> list[int]:
        """What sentence-transformers feeds the model: prompt + text, cut to the folder's
        max_seq_length with the special tokens kept."""
        room = self._max_length - len(self.tokenizer.prefix) - len(self.tokenizer.suffix)
        return self.tokenizer.prefix + self.tokenizer.encode(prompt + text)[:room] + self.tokenizer.suffix

    def batches(self, texts: list[str], prompt: str, batch_size: int) -> Iterator[tuple[list[int], dict]]:
        """The session's inputs for these texts: (rows of `texts`, the feed of `session.run`)
        per batch. Also what `rag bench` runs through the bare session."""
        ids = [self.token_ids(text, prompt) for text in texts]
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))  # little padding per batch
        for first in range(0, len(order), batch_size):
            rows = order[first : first + batch_size]
            width = max(len(ids[row]) for row in rows)
            input_ids = np.full((len(rows), width), self.tokenizer.pad_id, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for line, row in enumerate(rows):
                input_ids[line, : len(ids[row])] = ids[row]
                mask[line, : len(ids[row])] = 1
            yield rows, {"input_ids": input_ids, "attention_mask": mask}

    def _encode(self, texts: list[str], prompt: str, batch_size: int) -> np.ndarray:
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        for rows, feed in self.batches(texts, prompt, batch_size):
            output = self.session.run(None, feed, _run_options())[0][:, : self.dim]
            vectors[rows] = output / np.linalg.norm(output, axis=1, keepdims=True)
        return vectors


@functools.cache
def _run_options():
    """Each run gives its arena memory back to the system when it ends (docs/performance.md)."""
    import onnxruntime

    options = onnxruntime.RunOptions()
    options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return options


def _export_variant(export: Path) -> dict:
    """What the export's record says about the graph in use: {"dim": n} for a shorter vector."""
    from models.stamps import RECORD_FILE

    try:
        return _read_json(export / RECORD_FILE).get("variant") or {}
    except (OSError, ValueError):
        return {}


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class EmbedderBackend:
    """One way to run an embedder, as rag/backends.py registers it."""

    accepts: Callable[[str], bool]  # (name or path): can this backend run that model?
    load: Callable[[str, int], Embedder]  # (name or path, threads): the loaded model


def load_embedder(name_or_path: str, threads: int) -> Embedder:
    """The model loaded by the first registered backend that accepts it (rag/backends.py)."""
    from . import backends

    return backends.first_accepting(backends.EMBEDDERS, name_or_path).load(name_or_path, threads)


def _current_export(name_or_path: str) -> Path | None:
    from models.stamps import current_export

    folder = Path(name_or_path)
    return current_export(folder) if folder.is_dir() else None


# A folder whose ONNX export `rag models` made and is still current.
ONNX = EmbedderBackend(
    accepts=lambda name_or_path: _current_export(name_or_path) is not None,
    load=lambda name_or_path, threads: OnnxEmbedder(Path(name_or_path), _current_export(name_or_path), threads),
)
# Any other model: by hub name (if cached) or folder path.
SENTENCE_TRANSFORMERS = EmbedderBackend(accepts=lambda name_or_path: True, load=SentenceTransformerEmbedder)
