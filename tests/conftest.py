"""Shared fixtures, and the two test layers.

The fast layer (`make test-fast`, `pytest -m "not full"`) loads no model and starts no
process: pure functions, the fakes of tests/fakes.py, small index fixtures. Everything else
is the full layer, marked `full` here: any test using the real models (the `assistant` and
`seeds_index` fixtures, or anything built on them) is marked automatically, and a test that
starts a process or loads a model another way carries `@pytest.mark.full` itself. A test
left in the fast layer that starts a process or loads a model fails, saying so.

The full layer loads the models once per session: the `assistant` fixture holds them, and
`shared_assistant` gives Assistants on other folders that reuse them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
ARTIFACTS = ROOT / "tests" / "artifacts"

# Fixtures that hold the real models; a test using them, directly or not, is in the full layer.
MODEL_FIXTURES = {"assistant", "seeds_index"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if MODEL_FIXTURES & set(getattr(item, "fixturenames", ())) or item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.full)


@pytest.fixture(autouse=True)
def _fast_layer_guard(request, monkeypatch):
    """In a test not marked `full`: starting a process or loading a real model fails."""
    if request.node.get_closest_marker("full"):
        return

    def refuse(what: str):
        def refused(*args, **kwargs):
            pytest.fail(f"{request.node.nodeid} {what}: mark it @pytest.mark.full or use tests/fakes.py",
                        pytrace=False)
        return refused

    from rag.embedding import OnnxEmbedder, SentenceTransformerEmbedder
    from rag.llm import LlamaCppLLM

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse("starts a process"))
    monkeypatch.setattr(SentenceTransformerEmbedder, "__init__", refuse("loads the embedder"))
    monkeypatch.setattr(OnnxEmbedder, "__init__", refuse("loads the embedder"))
    monkeypatch.setattr(LlamaCppLLM, "__init__", refuse("loads the LLM"))


@pytest.fixture(scope="session")
def assistant(tmp_path_factory):
    """One Assistant on an index of the seeds (in a temporary folder; the project's own index/
    is left alone) with the default models, loaded once and shared by the whole session."""
    from rag.assistant import Assistant
    from rag.settings import load_settings

    folder = tmp_path_factory.mktemp("seeds-index") / "index"
    shared = Assistant(load_settings(environ={}, docs_dir=SEEDS, index_dir=folder))
    shared.update_index()
    return shared


@pytest.fixture(scope="session")
def seeds_index(assistant) -> Path:
    """The folder of the session's index of seeds/."""
    return assistant.settings.index_dir


@pytest.fixture(scope="session")
def shared_assistant(assistant):
    """Make an Assistant with other settings (say, another documents folder) that reuses the
    session's loaded models instead of loading its own."""
    from rag.assistant import Assistant
    from rag.settings import load_settings

    def make(log=None, **settings):
        options = {"log": log} if log else {}
        return Assistant(load_settings(environ={}, **settings), embedder=assistant.embedder, llm=assistant.llm,
                         **options)

    return make


@pytest.fixture
def docs_copy(tmp_path) -> Path:
    """A writable copy of the seeds, for tests that change documents."""
    target = tmp_path / "docs"
    shutil.copytree(SEEDS, target)
    return target
