"""The evaluation and benchmark harness: shells over the public API of `rag`, run as `rag eval` and `rag bench`."""
