"""The question path without torch: the default embedder's ONNX export and fast tokenizer
must give sentence-transformers' vectors and token ids, an index built either way must be the
same, and answering a question must import neither torch nor transformers.

Real models throughout: the provisioned default embedder folder and its export.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, SEEDS

MIN_COSINE = 0.999
SENTENCES = {
    "en": [
        "How long does OpenAI's test take on a GPU?",
        "The warranty covers parts and labour for 24 months.",
        "Error: connection refused -- is the server running on port 8080?",
    ],
    "ko": [
        "인도네시아 기사에 따르면 OpenAI의 테스트는 GPU에서 몇 분 걸리나요?",
        "서울의 인구는 약 1,000만명이다.",
        "ＫＯＲＥＡ：전각 문자와 반각 문자를 섞어 씁니다。",
    ],
    "zh": [
        "北京是中国的首都。",
        "请问，这家餐厅的营业时间是几点到几点？",
        "全角数字１２３和半角数字456混合使用，价格为￥830.000元！",
    ],
    "id": [
        "Harga beras naik menjadi Rp 830.000 per karung.",
        "Apakah kantor imigrasi buka pada hari Sabtu?",
        "Jakarta adalah ibu kota Indonesia; penduduknya lebih dari 10 juta jiwa 😊",
    ],
}
HEAVY_MODULES = ("torch", "transformers", "sentence_transformers")
pytestmark = pytest.mark.full


@pytest.fixture(scope="module")
def folder() -> Path:
    from models.catalogue import find
    from models.provision import provision
    from rag.settings import MODELS_DIR

    return provision(find("e5-small", "embedder"), MODELS_DIR, progress=lambda message: None)


@pytest.fixture(scope="module")
def onnx_embedder(folder):
    from models.stamps import current_export
    from rag.embedding import OnnxEmbedder, load_embedder

    embedder = load_embedder(str(folder), threads=2)
    assert isinstance(embedder, OnnxEmbedder) and current_export(folder) is not None
    return embedder


@pytest.fixture(scope="module")
def st_embedder(folder):
    from rag.embedding import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(str(folder), threads=2)


@pytest.mark.parametrize("language", sorted(SENTENCES))
def test_vectors_agree_with_sentence_transformers(onnx_embedder, st_embedder, language):
    texts = SENTENCES[language] + [" ".join(SENTENCES[language]) * 40]  # and one cut at 512 tokens
    for encode in ("encode_queries", "encode_passages"):
        ours, theirs = getattr(onnx_embedder, encode)(texts), getattr(st_embedder, encode)(texts)
        assert ours.shape == theirs.shape and ours.dtype == np.float32
        cosines = (ours * theirs).sum(axis=1)
        assert cosines.min() >= MIN_COSINE, (encode, cosines)


def _texts_to_tokenize() -> list[str]:
    texts = [line for path in sorted(SEEDS.iterdir()) for line in path.read_text(encoding="utf-8").splitlines()]
    texts += [json.loads(line)["question"] for line in (ROOT / "eval" / "gold.jsonl").read_text().splitlines()]
    texts += [
        "<s> a literal <mask> and </s>",
        "  leading",
        "trailing  ",
        "",
        " ",
        "a\u3000\u3000b",
        "𠀀𠀁𠀂 x",
        "tab\tand\nnewline",
        "\u200bzero width",
        "ｆｕｌｌ　ｗｉｄｔｈ",
        "Ⅻ ① ﬁ ㍻",
    ]
    alphabet = [
        chr(c)
        for c in [
            *range(32, 0x250),
            *range(0x3000, 0x3100),
            *range(0xAC00, 0xAC80),
            *range(0x4E00, 0x4F00),
            *range(0x20000, 0x20010),
            0x1F600,
            0xA0,
            9,
            10,
        ]
    ]
    generator = random.Random(13)
    texts += ["".join(generator.choice(alphabet) for _ in range(generator.randint(1, 60))) for _ in range(1500)]
    return texts


def test_token_ids_are_the_tokenizers_library_s(onnx_embedder, st_embedder):
    texts = _texts_to_tokenize()
    reference = st_embedder.tokenizer  # the folder's tokenizer.json, through transformers
    for text in texts:
        assert onnx_embedder.tokenizer.encode(text) == reference(text, add_special_tokens=False)["input_ids"], text
        assert onnx_embedder.count_tokens(text) == st_embedder.count_tokens(text)
    for text in texts[:50] + [" ".join(texts[:200])]:  # with the prompt and special tokens, cut at 512
        expected = reference("query: " + text, truncation=True, max_length=512)["input_ids"]
        assert onnx_embedder.token_ids(text, "query: ") == expected


def test_an_index_built_either_way_is_the_same(onnx_embedder, st_embedder, tmp_path):
    from rag.chunking import ChunkingSettings
    from rag.index import update_index

    chunking = ChunkingSettings(128, 16)
    built = {
        name: update_index(SEEDS, tmp_path / name, embedder, chunking)[0]
        for name, embedder in (("onnx", onnx_embedder), ("torch", st_embedder))
    }
    assert built["onnx"].chunks == built["torch"].chunks
    assert built["onnx"].manifest["embedder"] == built["torch"].manifest["embedder"]
    ours, theirs = built["onnx"].raw_vectors(), built["torch"].raw_vectors()
    assert len(ours) > 50
    assert (
        (ours * theirs).sum(axis=1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
    ).min() >= MIN_COSINE


def test_a_folder_changed_after_its_export_is_loaded_by_sentence_transformers(folder, tmp_path):
    from models.stamps import current_export

    copy = tmp_path / folder.name
    shutil.copytree(folder, copy)  # copy2 keeps the mtimes the export recorded
    assert current_export(copy) == copy / "onnx" / "model.onnx"
    config = copy / "tokenizer_config.json"
    config.write_text(config.read_text() + " ")
    assert current_export(copy) is None


def _run_reporting_modules(arguments: list[str], index: Path) -> subprocess.CompletedProcess:
    """`ask` in a new process that prints, as it exits, which heavy modules it imported."""
    code = (
        "import atexit, sys\n"
        f"atexit.register(lambda: print('IMPORTED', [m for m in {HEAVY_MODULES!r} if m in sys.modules], "
        "file=sys.stderr))\n"
        "from rag.cli import ask_main\n"
        "sys.exit(ask_main(sys.argv[1:]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", code, "--index", str(index), *arguments],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


@pytest.mark.parametrize("mode", ["--retrieve-only", pytest.param("answer", marks=pytest.mark.slow)])
def test_answering_imports_neither_torch_nor_transformers(seeds_index, mode):
    arguments = ["--json", SENTENCES["ko"][0]] + ([mode] if mode.startswith("--") else [])
    result = _run_reporting_modules(arguments, seeds_index)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["retrieved"] and (answer["answer"] is None) == (mode == "--retrieve-only")
    assert "IMPORTED []" in result.stderr, result.stderr


# -- EmbeddingGemma through its ONNX export ------------------------------------------------------
@pytest.fixture(scope="module")
def gemma_folder() -> Path:
    from models.catalogue import find
    from models.provision import provision
    from rag.settings import MODELS_DIR

    return provision(find("gemma-300m", "embedder"), MODELS_DIR, progress=lambda message: None)


def test_gemma_export_agrees_with_sentence_transformers(gemma_folder):
    from models.catalogue import find
    from rag.embedding import OnnxEmbedder, SentenceTransformerEmbedder, load_embedder

    how = find("gemma-300m", "embedder").onnx
    ours = load_embedder(str(gemma_folder), threads=2)
    assert isinstance(ours, OnnxEmbedder) and ours.dim == (how.dim or 768)
    theirs = SentenceTransformerEmbedder(str(gemma_folder), threads=2)
    texts = [text for language in sorted(SENTENCES) for text in SENTENCES[language]]
    for encode in ("encode_queries", "encode_passages"):
        reference = getattr(theirs, encode)(texts)[:, : ours.dim]
        reference /= np.linalg.norm(reference, axis=1, keepdims=True)
        cosines = (getattr(ours, encode)(texts) * reference).sum(axis=1)
        assert cosines.min() >= (how.min_cosine if how.quantised else MIN_COSINE), (encode, cosines)
    for text in _texts_to_tokenize():  # SentencePiece, with transformers' special tokens read whole
        assert ours.tokenizer.encode(text) == theirs.tokenizer(text, add_special_tokens=False)["input_ids"], text
    assert ours.token_ids("北京", ours.query_prompt) == theirs.tokenizer(ours.query_prompt + "北京")["input_ids"]


def test_a_gemma_question_is_embedded_without_torch_or_transformers(gemma_folder):
    code = (
        "import sys\n"
        "from rag.embedding import OnnxEmbedder, load_embedder\n"
        "embedder = load_embedder(sys.argv[1], threads=1)\n"
        "assert isinstance(embedder, OnnxEmbedder), embedder\n"
        "assert embedder.encode_queries(['서울의 인구는?']).shape == (1, embedder.dim)\n"
        f"print([m for m in {HEAVY_MODULES!r} if m in sys.modules])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code, str(gemma_folder)], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
