"""The store the settings name (`--store`), looked up in rag/backends.py: the FAISS folder
(rag/index.py), Milvus (rag/milvus_store.py), or any other registered there.

Apart from rag/store.py, which every implementation builds on, so that none imports it back.
"""

from __future__ import annotations

from . import backends
from .chunking import ChunkingSettings
from .embedding import Embedder
from .library_records import read_records
from .store import Progress, Store, UpdateReport


def store_exists(settings) -> bool:
    return backends.store(settings.store).exists(settings)


def open_store(settings) -> Store:
    """The live store named by the settings; RagError if missing, corrupt or unreachable."""
    return backends.store(settings.store).open(settings)


def update_store(
    settings, embedder: Embedder, chunking: ChunkingSettings, rebuild: bool = False, progress: Progress | None = None
) -> tuple[Store, UpdateReport]:
    """Bring the chosen store in line with the documents folder, re-embedding only changed files;
    documents removed from the library (rag/library_records.py) stay out."""
    excluded = read_records(settings.index_dir).excluded
    return backends.store(settings.store).update(settings, embedder, chunking, rebuild, progress, excluded)
