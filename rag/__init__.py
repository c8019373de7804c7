"""polyglot-rag: offline multilingual question answering with citations to file and paragraph."""
