"""The LLM seam: chat messages in, a stream of text pieces out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from .errors import RagError

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": ...}


class LLM(Protocol):
    id: str

    def stream(self, messages: list[Message], max_tokens: int, temperature: float,
               grammar: str | None = None) -> Iterator[str]: ...

    def count_tokens(self, text: str) -> int: ...


class LlamaCppLLM:
    """A GGUF model in this process through llama-cpp-python, using its own chat template.

    The model is memory-mapped and loaded once; llama-cpp-python keeps the KV cache of
    the previous prompt and only evaluates the part of a new prompt after the common
    prefix, so the fixed system text first in every prompt is processed once per process.
    """

    def __init__(self, path: Path, context_tokens: int, threads: int) -> None:
        from models.provision import check_llm_file

        check_llm_file(path)
        import llama_cpp

        try:
            self.model = llama_cpp.Llama(model_path=str(path), n_ctx=context_tokens, n_threads=threads,
                                         n_threads_batch=threads, n_batch=512, use_mmap=True, verbose=False)
        except (ValueError, RuntimeError) as error:
            raise RagError(f"cannot load LLM {path}: {error} (truncated or not a llama.cpp GGUF?)") from None
        self.id = path.name
        self._grammars: dict[str, object] = {}

    def count_tokens(self, text: str) -> int:
        return len(self.model.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def stream(self, messages: list[Message], max_tokens: int, temperature: float,
               grammar: str | None = None) -> Iterator[str]:
        from llama_cpp import LlamaGrammar

        if grammar is not None and grammar not in self._grammars:
            self._grammars[grammar] = LlamaGrammar.from_string(grammar, verbose=False)
        try:
            pieces = self.model.create_chat_completion(
                messages, stream=True, max_tokens=max_tokens, temperature=temperature, seed=0,
                grammar=self._grammars.get(grammar) if grammar else None)
        except ValueError as error:  # e.g. the prompt exceeds the context window
            raise RagError(f"the LLM refused the prompt: {error}") from None
        for piece in pieces:
            text = piece["choices"][0]["delta"].get("content")
            if text:
                yield text
