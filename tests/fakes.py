"""Stand-ins for the Embedder and LLM seams (rag/embedding.py, rag/llm.py), for the fast layer.

They load nothing and answer at once, deterministically. What they cannot tell is whether
the real models do their part; the full layer checks that.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

_WORD = re.compile(r"\w+")


class FakeEmbedder:
    """Texts as unit vectors of hashed words: texts sharing words are near, others far."""

    def __init__(self, dim: int = 64, failing: bool = False) -> None:
        self.id, self.dim = f"fake-embedder-{dim}", dim
        self.failing = failing  # encode_passages raises, as a model that cannot run would
        self.passages_encoded = 0

    def count_tokens(self, text: str) -> int:
        return len(_WORD.findall(text)) + 2

    def _vector(self, text: str) -> np.ndarray:
        vector = np.zeros(self.dim, dtype=np.float32)
        for word in _WORD.findall(text.casefold()):
            vector[int(hashlib.sha256(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        norm = np.linalg.norm(vector)
        return vector / norm if norm else vector

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return np.stack([self._vector(t) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def encode_passages(self, texts: list[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        from rag.errors import RagError

        if self.failing:
            raise RagError("the fake embedder was told to fail")
        self.passages_encoded += len(texts)
        return self.encode_queries(texts)


class StandInLLM:
    """What every scripted LLM of the tests shares: no reply scored (so no confidence gate, as
    with a chat server) and tokens counted as words. Subclasses script `choose` and `stream`."""

    id = "scripted"

    def choose(self, messages: list[dict], prefix: str, options: list[str]) -> dict[str, float] | None:
        return None  # as a chat server: the whole reply is written, "[n] …" or "[0]"

    def score(self, messages: list[dict], prefix: str, text: str) -> None:
        return None

    def count_tokens(self, text: str) -> int:
        return len(text.split())


class FakeLLM(StandInLLM):
    """Replies with `reply` (or `reply(messages)`), in word-sized pieces; records every call."""

    def __init__(self, reply: str | Callable[[list[dict]], str] = "") -> None:
        self.id = "fake-llm"
        self.reply = reply
        self.calls: list[dict] = []

    def stream(
        self,
        messages: list[dict],
        max_tokens: int,
        temperature: float,
        grammar: str | None = None,
        prefix: str = "",
        copy_from=None,
        logprobs=None,
    ) -> Iterator[str]:
        self.calls.append(
            {"messages": messages, "max_tokens": max_tokens, "temperature": temperature, "grammar": grammar}
        )
        text = self.reply(messages) if callable(self.reply) else self.reply
        yield from re.findall(r"\S+\s*", text)


# Three short documents in two languages: enough for an index, searched in milliseconds.
SMALL_DOCUMENTS = {
    "tea.txt": "Zorblax Analytics sells weather forecasts to tea farmers.\n\n"
    "The company was founded in Bandung in 2031 by Dewi Kartika.\n",
    "rice.md": "Harga beras naik menjadi Rp 830.000 per karung.\n\nPetani padi menunggu hujan.\n",
    "ships.txt": "The harbour of Quillport handles 412 container ships a year.\n",
}


def paged_documents():
    """A PDF as its reader gives it (two pages, the second read by OCR, a paragraph cut in two)
    beside a text file: the paragraphs a store must give back with their pages and numbers,
    without a PDF to read."""
    from rag.documents import Document, Paragraph

    pdf = Document(
        "report.pdf",
        "a" * 64,
        "en",
        (
            Paragraph("report.pdf", 1, 1, "The harbour of Quillport opened in 1932.", 1),
            Paragraph("report.pdf", 2, 2, "It handles 412 container ships a year.", 1),
            Paragraph("report.pdf", 3, 3, "The lighthouse keeper counted 4,180 ships.", 2, True),
            # A paragraph cut for length: two pieces under one number.
            Paragraph("report.pdf", 4, 4, "The harbour master kept a log of every ship.", 2),
            Paragraph("report.pdf", 4, 5, "The log filled nine volumes by 1990.", 2),
        ),
        "Harbour report",
        "pdf 1",
    )
    text = Document("notes.txt", "b" * 64, "en", (Paragraph("notes.txt", 1, 1, "Tea farmers buy forecasts."),))
    return [pdf, text]


def small_docs(folder: Path) -> Path:
    """A documents folder with SMALL_DOCUMENTS in it."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in SMALL_DOCUMENTS.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def fake_assistant(
    root: Path, reply: str | Callable[[list[dict]], str] = "", embedder: FakeEmbedder | None = None, **settings
):
    """An Assistant on a small documents folder under `root`, with the fakes for models."""
    from rag.assistant import Assistant
    from rag.settings import load_settings

    docs = small_docs(root / "docs")
    return Assistant(
        load_settings(environ={}, docs_dir=docs, index_dir=root / "index", **settings),
        log=lambda message: None,
        embedder=embedder or FakeEmbedder(),
        llm=FakeLLM(reply),
    )
