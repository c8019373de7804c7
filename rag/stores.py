"""The store the settings name: the FAISS folder (rag/index.py) or Milvus (rag/milvus_store.py).

Apart from rag/store.py, which both implementations build on, so that neither imports it back.
"""

from __future__ import annotations

from .chunking import ChunkingSettings
from .embedding import Embedder
from .store import Progress, Store, UpdateReport


def store_exists(settings) -> bool:
    if settings.store == "milvus":
        from .milvus_store import exists as milvus_exists

        return milvus_exists(settings)
    from .index import exists

    return exists(settings.index_dir)


def open_store(settings) -> Store:
    """The live store named by the settings; RagError if missing, corrupt or unreachable."""
    if settings.store == "milvus":
        from .milvus_store import open_milvus

        return open_milvus(settings)
    from .index import load_index

    return load_index(settings.index_dir)


def update_store(
    settings, embedder: Embedder, chunking: ChunkingSettings, rebuild: bool = False, progress: Progress | None = None
) -> tuple[Store, UpdateReport]:
    """Bring the chosen store in line with the documents folder, re-embedding only changed files."""
    if settings.store == "milvus":
        from .milvus_store import update_milvus

        return update_milvus(settings, embedder, chunking, rebuild, progress)
    from .index import update_index

    return update_index(
        settings.docs_dir, settings.index_dir, embedder, chunking, settings.index_type, rebuild, progress
    )
