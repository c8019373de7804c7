"""Shared fixtures: the real models and an index of the real seeds, built once per session."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
ARTIFACTS = ROOT / "tests" / "artifacts"


@pytest.fixture(scope="session")
def seeds_index(tmp_path_factory) -> Path:
    """An index of seeds/ in a temporary folder (the project's own index/ is left alone)."""
    from rag.assistant import Assistant
    from rag.settings import load_settings

    folder = tmp_path_factory.mktemp("seeds-index") / "index"
    Assistant(load_settings(environ={}, docs_dir=SEEDS, index_dir=folder)).update_index()
    return folder


@pytest.fixture(scope="session")
def assistant(seeds_index):
    """One Assistant on the seeds with the default models, shared by the whole session."""
    from rag.assistant import Assistant
    from rag.settings import load_settings

    return Assistant(load_settings(environ={}, docs_dir=SEEDS, index_dir=seeds_index))


@pytest.fixture
def docs_copy(tmp_path) -> Path:
    """A writable copy of the seeds, for tests that change documents."""
    target = tmp_path / "docs"
    shutil.copytree(SEEDS, target)
    return target
