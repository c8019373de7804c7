"""The pipeline that joins the parts: question -> hits -> prompt -> answer with citations.

The CLI, the chat UI and the evaluation harness all hold one Assistant; none of them
touches FAISS, the tokenizer or llama.cpp directly.
"""

from __future__ import annotations

import re
import sys
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

from . import prompts
from .chunking import ChunkingSettings
from .citations import Citation, check_answer, resolve
from .conversation import Rewrite, standalone_question
from .embedding import Embedder, load_embedder
from .errors import RagError
from .language import detect_language
from .library import Library
from .llm import LLM, LlamaCppLLM
from .passages import Passage, select_passages
from .retrieval import Hit, Retriever
from .scale import E5_SMALL, Scale, measure
from .settings import Settings
from .store import Store, UpdateReport
from .stores import open_store, store_exists, update_store

MAX_QUESTION_CHARS = 2000


NOT_FOUND = "not_found"  # no passage answers the question
UNVERIFIED = "unverified"  # the model answered, but the check found no passage that supports it


@dataclass(frozen=True)
class Answer:
    question: str
    text: str | None  # the checked answer, or a notice when abstained; None when retrieve-only
    abstained: bool
    citations: list[Citation]
    hits: list[Hit]
    language: str
    timings_ms: dict[str, float] = field(default_factory=dict)
    unsupported: list[str] = field(default_factory=list)  # what the model said that no passage supports
    passages: list[Passage] = field(default_factory=list)  # what the LLM read
    reason: str | None = None  # NOT_FOUND or UNVERIFIED when abstained
    why: str | None = None  # what the check found, when UNVERIFIED
    passage: Passage | None = None  # the most relevant passage, shown when UNVERIFIED
    truncated: bool = False  # the answer was cut at the token limit (and ends cleanly)
    answerable: float | None = None  # the model's probability that a passage answers

    def to_json(self) -> dict:
        return {
            "question": self.question,
            "answer": self.text,
            "abstained": self.abstained,
            "reason": self.reason,
            "why": self.why,
            "truncated": self.truncated,
            "answerable_probability": None if self.answerable is None else round(self.answerable, 4),
            "language": self.language,
            "citations": [c.to_json() for c in self.citations],
            "unsupported": self.unsupported,
            "passage": None if self.passage is None else self.passage.to_json(),
            "retrieved": [h.to_json() for h in self.hits],
            "passages": [p.to_json() for p in self.passages],
            "timings_ms": {k: round(v, 1) for k, v in self.timings_ms.items()},
        }


# Events of a live answer: the retrieved passages first, then text pieces, then the Answer.
@dataclass(frozen=True)
class Retrieved:
    hits: list[Hit]


@dataclass(frozen=True)
class Token:
    text: str


@dataclass(frozen=True)
class Done:
    answer: Answer


Event = Retrieved | Token | Done


_TERMINAL_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]")


def clean_question(question: str) -> str:
    """The question with control characters removed and whitespace collapsed; RagError if unusable."""
    if not isinstance(question, str):
        raise RagError("the question must be text")
    # Terminal escape sequences (pasted colour codes, titles) go whole, not only their ESC.
    text = _TERMINAL_ESCAPE.sub(" ", question)
    text = "".join(" " if unicodedata.category(c)[0] in "CZ" else c for c in text)
    text = " ".join(text.split())
    if not text:
        raise RagError("the question is empty")
    if not any(unicodedata.category(c)[0] in "LN" for c in text):
        # Emoji or punctuation alone: retrieval returns arbitrary passages, and the LLM, asked
        # to answer from them, invents a question (measured: 'Write a comment [1]').
        raise RagError("the question has no words (only symbols or emoji); ask it in words")
    if len(text) > MAX_QUESTION_CHARS:
        raise RagError(f"the question is too long ({len(text)} characters; at most {MAX_QUESTION_CHARS})")
    return text


def clean_cut(text: str) -> str:
    """Text cut by the token limit, ended at its last sentence end, else its last whole word, with "…"."""
    sentence_end = max(text.rfind(mark) for mark in (". ", "。", "！", "？", "! ", "? "))
    if sentence_end > len(text) // 2:
        return text[: sentence_end + 1].rstrip()
    space = text.rstrip().rfind(" ")
    cut = text[:space] if space > len(text) // 2 else text
    return cut.rstrip(" ,;:、，") + "…"


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Assistant:
    """Holds the models and the index, loaded once and on first use."""

    def __init__(
        self,
        settings: Settings,
        log: Callable[[str], None] = _to_stderr,
        embedder: Embedder | None = None,
        llm: LLM | None = None,
    ) -> None:
        """`embedder` and `llm`, when given, are used instead of loading the models the settings
        name: models another Assistant already loaded, or instrumented ones."""
        self.settings = settings
        self.log = log
        self._embedder: Embedder | None = embedder
        self._index: Store | None = None
        self._llm: LLM | None = llm
        self._scale: Scale | None = None
        # One answer at a time per Assistant, its passage choice and its generation back to back
        # so that the second reuses the KV cache the first filled. (LlamaCppLLM guards its
        # context itself, also against other Assistants given the same model.)
        self._generation_lock = threading.Lock()
        # One lock per part, so the LLM can load in another thread while the embedder and the
        # index load in this one (preload_llm); the index takes the embedder's lock inside its own.
        self._embedder_lock, self._index_lock, self._llm_lock = threading.RLock(), threading.RLock(), threading.RLock()

    # -- parts, loaded lazily -------------------------------------------------------------
    @property
    def embedder(self) -> Embedder:
        with self._embedder_lock:
            if self._embedder is None:
                if self.settings.embedder_model is not None:
                    from models.provision import provision

                    provision(self.settings.embedder_model, self.settings.models_dir, self.log)
                self._embedder = load_embedder(self.settings.embedder_name, self.settings.threads)
            return self._embedder

    @property
    def index(self) -> Store:
        """The live store (FAISS folder or Milvus collection, by settings.store)."""
        with self._index_lock:
            if self._index is None:
                if store_exists(self.settings):
                    self._index = open_store(self.settings)
                    self._check_embedder_matches(self._index)
                else:
                    self.log(f"No index in {self.settings.index_location}; building one from {self.settings.docs_dir}")
                    self.update_index()
            return self._index

    @property
    def llm(self) -> LLM:
        with self._llm_lock:
            if self._llm is None:
                if self.settings.llm_url:
                    from .llm import OpenAICompatibleLLM

                    self._llm = OpenAICompatibleLLM(self.settings.llm_url)
                else:
                    if self.settings.llm_model is not None:
                        from models.provision import provision

                        provision(self.settings.llm_model, self.settings.models_dir, self.log)
                    self._llm = LlamaCppLLM(self.settings.llm_path, self.settings.context_tokens, self.settings.threads)
            return self._llm

    def preload_llm(self) -> threading.Thread:
        """Start loading the LLM in a background thread, so that a cold start pays for the
        longer of the LLM's load and the embedder's and index's, not for their sum (llama.cpp
        loads without holding Python's lock). A failure is raised again, as a one-line error,
        where the LLM is first used. While llama-cpp-python loads a model quietly it points
        file descriptors 1 and 2 at /dev/null, for every thread: join the returned thread
        before writing anything the user must see."""

        def load() -> None:
            try:
                self.llm  # noqa: B018 -- the property loads the model
            except Exception:
                pass

        thread = threading.Thread(target=load, name="preload-llm", daemon=True)
        thread.start()
        return thread

    @property
    def scale(self) -> Scale:
        """The embedder's similarity scale, measured once (see rag/scale.py); the catalogue's
        e5-small's is known, which spares a cold question 64 embeddings."""
        with self._embedder_lock:
            if self._scale is None:
                model = self.settings.embedder_model
                self._scale = E5_SMALL if model is not None and model.name == "e5-small" else measure(self.embedder)
            return self._scale

    def threshold(self, e5_value: float) -> float:
        """A similarity threshold from Settings (written on e5-small's scale) for this embedder."""
        return self.scale.carry(e5_value, E5_SMALL)

    @property
    def chunking(self) -> ChunkingSettings:
        return ChunkingSettings(self.settings.chunk_tokens, self.settings.chunk_overlap)

    def _check_embedder_matches(self, index: Store) -> None:
        built_with = index.manifest["embedder"]
        if built_with != {"id": self.embedder.id, "dim": self.embedder.dim}:
            from models.catalogue import CATALOGUE

            other = next(
                (m.name for m in CATALOGUE if m.kind == "embedder" and built_with["id"].startswith(m.target)), None
            )
            raise RagError(
                f"the index in {self.settings.index_location} was built with embedder {built_with['id']}, not "
                f"{self.embedder.id}; run `rag index` to rebuild it"
                + (f" (or pass --embedder {other} to use it as it is)" if other else "")
            )

    def update_index(
        self, rebuild: bool = False, progress: Callable[[str, int, int], None] | None = None
    ) -> UpdateReport:
        """Bring the index in line with the documents; `progress(stage, done, total)` as in rag.index."""
        with self._index_lock:
            index, report = update_store(self.settings, self.embedder, self.chunking, rebuild, progress)
            self._index = index
            return report

    # -- answering ---------------------------------------------------------------------
    def retrieve(self, question: str, k: int | None = None, mode: str | None = None) -> list[Hit]:
        """The k best chunks for the question; mode is dense, keyword or hybrid (default: settings)."""
        return self._retrieve(clean_question(question), k, mode)[0]

    def _retrieve(self, question: str, k: int | None, mode: str | None) -> tuple[list[Hit], np.ndarray]:
        query = self.embedder.encode_queries([question])[0]
        hits = Retriever(self.index, self.embedder).search(
            question, k or self.settings.k, mode or self.settings.retrieval, query
        )
        return hits, query

    def ask(self, question: str, **options) -> Answer:
        for event in self.stream(question, **options):
            if isinstance(event, Done):
                return event.answer
        raise AssertionError("stream ended without an answer")

    def stream(
        self,
        question: str,
        k: int | None = None,
        retrieve_only: bool = False,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> Iterator[Event]:
        started = time.perf_counter()
        elapsed = lambda: (time.perf_counter() - started) * 1000
        question = clean_question(question)
        language = detect_language(question)
        hits, query = self._retrieve(question, k, None)
        timings = {"retrieve": elapsed()}
        yield Retrieved(hits)
        if retrieve_only:
            timings["total"] = timings["retrieve"]
            yield Done(Answer(question, None, False, [], hits, language, timings))
            return
        passages = select_passages(
            question, query, hits, self.index, self.embedder, self.settings.passages, self.settings.passage_tokens
        )
        timings["passages"] = elapsed() - timings["retrieve"]

        def finish(**fields) -> Done:
            timings.setdefault("first_token", elapsed())
            timings["total"] = elapsed()
            return Done(
                Answer(question=question, hits=hits, language=language, timings_ms=timings, passages=passages, **fields)
            )

        def not_found(answerable: float | None = None) -> Done:
            return finish(
                text=prompts.not_found(language), abstained=True, citations=[], reason=NOT_FOUND, answerable=answerable
            )

        if not passages or passages[0].cosine < self.threshold(self.settings.min_similarity):
            yield not_found()
            return
        messages = prompts.messages(question, [p.text for p in passages], language)
        max_tokens = max_tokens or self.settings.max_tokens
        temperature = self.settings.temperature if temperature is None else temperature
        with self._generation_lock:
            probabilities = self.llm.choose(messages, prompts.CHOICE_PREFIX, prompts.choices(len(passages)))
            answerable = None if probabilities is None else 1.0 - probabilities[prompts.NONE]
            if answerable is not None and answerable < self.settings.min_answerable:
                yield not_found(answerable)
                return
            if probabilities is None:  # the backend writes the whole reply, "[n] …" or "[0]"
                prefix, grammar = "", prompts.grammar(len(passages))
            else:
                best = max(prompts.choices(len(passages))[1:], key=probabilities.__getitem__)
                # No space after "]": the answer's first token carries its own leading space, as in
                # the model's training text; a prompt ending in a space pushes it towards digits.
                prefix, grammar = f"{prompts.CHOICE_PREFIX}{best}]", prompts.answer_grammar()
            pieces: list[str] = []
            for piece in self.llm.stream(messages, max_tokens, temperature, grammar=grammar, prefix=prefix):
                timings.setdefault("first_token", elapsed())
                pieces.append(piece)
                yield Token(piece)
        reply = prefix + "".join(pieces)
        chosen = re.match(r"\s*\[\s*(\d+)\s*\]\s*(.*)", reply, re.DOTALL)
        if chosen is None or chosen.group(1) == prompts.NONE:
            yield not_found(answerable)
            return
        claim = chosen.group(2).strip()
        truncated = bool(pieces) and self.llm.count_tokens("".join(pieces)) >= max_tokens
        if truncated:
            claim = clean_cut(claim)
        verdict = check_answer(
            claim,
            int(chosen.group(1)),
            question,
            passages,
            self._similarities,
            self.threshold(self.settings.support_similarity),
        )
        if not verdict.supported:
            yield finish(
                text=prompts.unverified(language),
                abstained=True,
                citations=[],
                reason=UNVERIFIED,
                why=verdict.reason,
                passage=passages[0],
                unsupported=[verdict.claim] if verdict.claim else [],
                answerable=answerable,
            )
            return
        citation = resolve(verdict, passages, self.index.paragraph)
        yield finish(
            text=f"{verdict.claim} [{citation.n}]",
            abstained=False,
            citations=[citation],
            truncated=truncated,
            answerable=answerable,
        )

    def generate(self, messages: list[dict[str, str]], max_tokens: int, temperature: float) -> Iterator[str]:
        """The LLM's reply, piece by piece; callers in other threads wait their turn."""
        with self._generation_lock:
            yield from self.llm.stream(messages, max_tokens, temperature)

    def standalone_question(self, history: Sequence[tuple[str, str]], question: str) -> Rewrite:
        """A follow-up made standalone from the earlier (question, answer) pairs, oldest first,
        or the question itself (rag/conversation.py); the LLM is asked in its turn."""
        # The rewriting asks for `stream(messages, max_tokens, temperature)`: the LLM, one caller at a time.
        return standalone_question(SimpleNamespace(stream=self.generate), history, question)

    @property
    def library(self) -> Library:
        """The documents folder, changed together with the index (adding, removing documents)."""
        return Library(self)

    def _similarities(self, claim: str, texts: list[str]) -> list[float]:
        """Cosine similarity of a claim to each text (meaning, across languages)."""
        if not texts:
            return []
        vectors = self.embedder.encode_passages(texts)
        return (vectors @ self.embedder.encode_queries([claim])[0]).tolist()
