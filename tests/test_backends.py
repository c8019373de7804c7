"""One registry per backend kind (rag/backends.py): a new store, embedder or LLM is one
backend object and one registry line, and everything that picks a backend goes through it."""

from __future__ import annotations

import pytest

from rag import backends, index
from rag.assistant import Assistant
from rag.embedding import EmbedderBackend, load_embedder
from rag.errors import RagError
from rag.llm import LLMBackend
from rag.settings import load_settings
from rag.store import StoreBackend
from rag.stores import open_store, store_exists, update_store

from .fakes import FakeEmbedder, FakeLLM, small_docs

KINDS = {"STORES": StoreBackend, "EMBEDDERS": EmbedderBackend, "LLMS": LLMBackend}

CALLS: list[str] = []


def _recorded(name, function):
    def call(settings, *args):
        CALLS.append(name)
        return function(settings, *args)

    return call


# A new store, as a module would declare it: the FAISS folder under another name, recording calls.
RECORDING = StoreBackend(
    exists=_recorded("exists", index.STORE.exists),
    open=_recorded("open", index.STORE.open),
    update=_recorded("update", index.STORE.update),
    location=lambda settings: f"recording store in {settings.index_dir}",
)
FAKE_EMBEDDER = EmbedderBackend(accepts=lambda name: name == "fake", load=lambda name, threads: FakeEmbedder(32))
FAKE_LLM = LLMBackend(accepts=lambda settings: settings.llm == "fake", load=lambda settings, log: FakeLLM("[1] x"))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_registered_backend_is_a_backend_of_its_kind(kind):
    registry = getattr(backends, kind)
    assert registry
    for name in registry:
        assert isinstance(backends.resolve(registry, name), KINDS[kind]), (kind, name)


def test_a_registered_store_is_the_one_every_caller_uses(tmp_path, monkeypatch):
    monkeypatch.setitem(backends.STORES, "recording", "tests.test_backends:RECORDING")
    CALLS.clear()
    settings = load_settings(
        environ={}, docs_dir=small_docs(tmp_path / "docs"), index_dir=tmp_path / "index", store="recording"
    )
    embedder = FakeEmbedder()
    assert not store_exists(settings)
    store, report = update_store(settings, embedder, Assistant(settings, embedder=embedder).chunking)
    assert report.embedded_files and store_exists(settings) and open_store(settings).chunk_count == store.chunk_count
    assert CALLS == ["exists", "update", "exists", "open"]
    assert settings.index_location == f"recording store in {tmp_path / 'index'}"
    # and through the Assistant, which builds the index on first use
    CALLS.clear()
    assistant = Assistant(settings.replace(index_dir=tmp_path / "other"), embedder=embedder, llm=FakeLLM())
    assert assistant.retrieve("Who founded Zorblax Analytics?") and CALLS[:2] == ["exists", "update"]


def test_an_unregistered_store_is_a_one_line_error(tmp_path):
    with pytest.raises(RagError, match="store must be faiss or milvus, not 'nowhere'"):
        load_settings(environ={}, store="nowhere")
    with pytest.raises(RagError, match="no such backend 'nowhere': one of faiss, milvus"):
        backends.store("nowhere")


def test_the_first_embedder_backend_that_accepts_the_name_loads_it(monkeypatch):
    monkeypatch.setattr(backends, "EMBEDDERS", {"fake": "tests.test_backends:FAKE_EMBEDDER", **backends.EMBEDDERS})
    assert isinstance(load_embedder("fake", threads=1), FakeEmbedder)
    settings = load_settings(environ={}, embedder="fake")
    assert Assistant(settings, llm=FakeLLM()).embedder.dim == 32


def test_the_first_llm_backend_that_accepts_the_settings_loads_it(monkeypatch, tmp_path):
    monkeypatch.setattr(backends, "LLMS", {"fake": "tests.test_backends:FAKE_LLM", **backends.LLMS})
    settings = load_settings(environ={}, llm="fake")
    assert isinstance(Assistant(settings, embedder=FakeEmbedder()).llm, FakeLLM)
    # a server URL is the OpenAI-compatible backend's, before llama.cpp's (which would load a model)
    served = Assistant(load_settings(environ={}, llm_url="http://127.0.0.1:9"), embedder=FakeEmbedder()).llm
    assert type(served).__name__ == "OpenAICompatibleLLM" and served.id == "http://127.0.0.1:9"
