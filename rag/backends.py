"""The backends of each kind, by name: a new store, embedder or LLM is a module that defines
one backend object (a `StoreBackend`, `EmbedderBackend` or `LLMBackend`) and one line here.

Entries name "module:attribute" and are imported on first use, so a cold `ask` imports only
the backends it uses (not pymilvus, say, nor torch). This module imports nothing of the
project but its error type, so settings can read the names from it.
"""

from __future__ import annotations

import importlib

from .errors import RagError

# Where the index lives, by `--store` name; the first is the default.
STORES = {
    "faiss": "rag.index:STORE",
    "milvus": "rag.milvus_store:STORE",
}
# Embedders, in order: the first that accepts the model's name or path loads it.
EMBEDDERS = {
    "onnx": "rag.embedding:ONNX",
    "sentence-transformers": "rag.embedding:SENTENCE_TRANSFORMERS",
}
# LLMs, in order: the first that accepts the settings loads it.
LLMS = {
    "openai-compatible": "rag.llm:OPENAI_COMPATIBLE",
    "llama.cpp": "rag.llm:LLAMA_CPP",
}


def resolve(registry: dict[str, str], name: str):
    """The backend registered under `name`."""
    if name not in registry:
        raise RagError(f"no such backend {name!r}: one of {', '.join(registry)}")
    module, _, attribute = registry[name].partition(":")
    return getattr(importlib.import_module(module), attribute)


def store(name: str):
    return resolve(STORES, name)


def first_accepting(registry: dict[str, str], *what):
    """The first backend of the registry that accepts `what` (each has an `accepts`)."""
    for name in registry:
        backend = resolve(registry, name)
        if backend.accepts(*what):
            return backend
    raise RagError(f"no backend among {', '.join(registry)} accepts {what[0]}")
