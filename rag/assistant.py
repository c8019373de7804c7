"""The pipeline that joins the parts: question -> hits -> prompt -> answer with citations.

The CLI, the chat UI and the evaluation harness all hold one Assistant; none of them
touches FAISS, the tokenizer or llama.cpp directly.
"""

from __future__ import annotations

import contextlib
import math
import re
import sys
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from types import SimpleNamespace

import numpy as np

from . import prompts
from .chunking import ChunkingSettings
from .citations import Citation
from .conversation import Rewrite, standalone_question
from .embedding import Embedder, load_embedder
from .errors import RagError
from .grounding import problem_with_quote, problem_with_span, quote_of
from .language import detect_language, question_language
from .library import Library
from .llm import LLM, load_llm
from .numbers import keeps_numbers, same_numbers
from .passages import Passage, SentenceVectors, select_passages
from .retrieval import Hit, Retriever
from .scale import E5_SMALL, Scale, measure
from .scope import Scope, mentions, named_files
from .settings import Settings
from .store import FolderChanges, Store, UpdateReport, folder_changes
from .stores import open_store, store_exists, update_store

MAX_QUESTION_CHARS = 2000
# Longest translation of a copied answer, and of a question to search with, in LLM tokens.
TRANSLATION_TOKENS = 48
QUESTION_TRANSLATION_TOKENS = 96


def search_language(language: str, files: dict[str, dict], within: frozenset[str] | None = None) -> str | None:
    """The language a question is searched in as well as its own: the one most of the searched
    documents' chunks are in, when the question's own language holds under half of them (its
    evidence is then most likely written in another, which the embedder matches less well);
    None when the question's language is the documents' own."""
    chunks: dict[str, int] = {}
    for file, record in files.items():
        if within is None or file in within:
            chunks[record["language"]] = chunks.get(record["language"], 0) + record["chunks"]
    total = sum(chunks.values())
    if not total or 2 * chunks.get(language, 0) >= total:
        return None
    most = max(chunks, key=lambda code: (chunks[code], code))
    return None if most == language else most


@contextlib.contextmanager
def timed(timings: dict[str, float], step: str) -> Iterator[None]:
    """Adds the time the block takes to `timings[step]`, in ms (a step may come back, as the
    search does for a translated question)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[step] = timings.get(step, 0.0) + (time.perf_counter() - started) * 1000


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
    # The model's own probability of each reply start: "0" (no passage answers), "1".."n".
    choice_probabilities: dict[str, float] | None = None
    copied: str | None = None  # the answer as copied from the cited sentence, verbatim
    copy_probability: float | None = None  # the model's own probability of the copy, per token
    # How much likelier the question makes the copy than questions that ask nothing (log, nats),
    # and `answerable` moved by it: what decides whether the copy is shown (question_gain).
    question_gain: float | None = None
    confidence: float | None = None
    # What other passages the model also took to answer say instead, each with its citation's n.
    disagreements: list[tuple[str, int]] = field(default_factory=list)
    translation: str | None = None  # the copy in the question's language, when they differ
    # The model's own probability of the translation it wrote, per token (also when it was
    # below min_translated and so not shown).
    translation_probability: float | None = None
    searched: tuple[str, ...] | None = None  # the files a scoped question searched; None: all
    # The question as also searched, in the language of most documents searched (search_language).
    searched_as: str | None = None

    @property
    def shown(self) -> str | None:
        """The text a reader is shown: the answer, then what other sources say otherwise."""
        if self.text is None or not self.disagreements:
            return self.text
        return " ".join([self.text, *(prompts.disagreement(self.language, s, n) for s, n in self.disagreements)])

    def to_json(self) -> dict:
        return {
            "question": self.question,
            "answer": self.text,
            "abstained": self.abstained,
            "reason": self.reason,
            "why": self.why,
            "truncated": self.truncated,
            "answerable_probability": None if self.answerable is None else round(self.answerable, 4),
            "choice_probabilities": None
            if self.choice_probabilities is None
            else {choice: round(p, 4) for choice, p in self.choice_probabilities.items()},
            "copied": self.copied,
            "copy_probability": None if self.copy_probability is None else round(self.copy_probability, 4),
            "question_gain": None if self.question_gain is None else round(self.question_gain, 3),
            "confidence": None if self.confidence is None else round(self.confidence, 4),
            "translation": self.translation,
            "translation_probability": None
            if self.translation_probability is None
            else round(self.translation_probability, 4),
            "disagreements": [{"answer": span, "citation": n} for span, n in self.disagreements],
            "language": self.language,
            "citations": [c.to_json() for c in self.citations],
            "unsupported": self.unsupported,
            "passage": None if self.passage is None else self.passage.to_json(),
            "searched": None if self.searched is None else list(self.searched),
            "searched_as": self.searched_as,
            "retrieved": [h.to_json() for h in self.hits],
            "passages": [p.to_json() for p in self.passages],
            "timings_ms": {k: round(v, 1) for k, v in self.timings_ms.items()},
        }


@dataclass(frozen=True)
class Copied:
    """An answer copied from passage n, the sentence of its paragraph it stands in, the
    passage's language, and why it is no answer (None when it is one)."""

    n: int
    span: str
    quote: str
    language: str
    problem: str | None

    def needs_translation(self, question_language: str) -> bool:
        """Whether the question's reader needs the copy in another language: it is in another
        language than the question and holds letters (a number or a code reads the same)."""
        return self.language != question_language and any(c.isalpha() for c in self.span)


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


def question_gain(llm, question: str, passages: list[Passage], copied: Copied) -> float | None:
    """How much likelier the model finds its copy (and its end there) after the question than
    after questions that ask nothing, over the same passages: the log-probability of the copy's
    tokens given the question minus its mean given each of `prompts.CONTENT_FREE`. Words the
    model would copy from these passages whatever was asked do not answer this question; words
    the question makes likely do. None if the backend cannot score a reply."""
    # The question last: the translation turn that may follow reuses its KV cache.
    free = [copy_logprob(llm, asked, passages, copied) for asked in prompts.CONTENT_FREE]
    given = copy_logprob(llm, question, passages, copied)
    if given is None or None in free:
        return None
    return given - sum(free) / len(free)


def copy_logprob(llm, asked: str, passages: list[Passage], copied: Copied) -> float | None:
    """The model's log-probability of the copy, and of its reply ending there, after the question
    `asked` over these passages; None if the backend cannot score a reply."""
    messages = prompts.messages(asked, [p.text for p in passages])
    logprobs = llm.score(messages, f"{prompts.CHOICE_PREFIX}{copied.n}]", " " + copied.span)
    return None if logprobs is None else sum(logprobs)


def confidence(answerable: float, gain: float, weight: float) -> float:
    """The model's probability that a passage answers, moved on the log-odds scale by `weight`
    per nat of `question_gain`: the more the question itself makes the copied words likely,
    the less sure the choice of passage needs to be."""
    answerable = min(max(answerable, 1e-6), 1 - 1e-6)
    return 1.0 / (1.0 + math.exp(-(math.log(answerable / (1 - answerable)) + weight * gain)))


def passage_weight(probabilities: dict[str, float], choice: str, prior: float) -> float:
    """How much the answer should come from passage `choice`: the model's own probability of it,
    times `prior` for each place it stands after the first (the passages come in the retriever's
    order; 1 leaves the model's order as it is)."""
    return probabilities[choice] * prior ** (int(choice) - 1)


def ranked_choices(probabilities: dict[str, float], passages: int, prior: float) -> list[str]:
    """The passages' choices in the order they are tried, by `passage_weight`."""
    return sorted(
        prompts.choices(passages)[1:], key=lambda choice: passage_weight(probabilities, choice, prior), reverse=True
    )


def per_token(logprobs: list[float]) -> float | None:
    """The model's own probability of what it wrote, per token (the geometric mean of the
    tokens' probabilities), or None when a backend could not read them."""
    return math.exp(sum(logprobs) / len(logprobs)) if logprobs else None


def copy_probability_of(source: prompts.CopySource) -> float | None:
    """The model's own probability of the copy it made from `source`, per token."""
    return per_token(source.logprobs)


def _copy_attempt(choice: str, passages: list[Passage], start_rank: int = 0) -> tuple[str, prompts.CopySource]:
    """The reply's start naming passage `choice`, and that passage as what the copy is held to
    (starting at the model's `start_rank`-th likeliest first token, 0 its likeliest). No space
    after "]": the answer's first token carries its own leading space, as in the model's
    training text."""
    return f"{prompts.CHOICE_PREFIX}{choice}]", prompts.copy_source(passages[int(choice) - 1].text, start_rank)


def _citation(n: int, copied: Copied, passages: list[Passage], index: Store) -> Citation:
    """Citation [n] of the paragraph `copied` was copied from, with the sentence it stands in."""
    source = passages[copied.n - 1]
    found = index.paragraph(source.file, source.piece)
    return Citation(n, source.file, source.paragraph, found.text, copied.quote, found.page, found.ocr)


def differ(one: str, other: str) -> bool:
    """Whether two copied answers say different things: neither holds the other, compared
    without case, spacing or punctuation, and they do not state the same numbers in other
    words (`120 million`, `1.2亿`)."""
    a, b = ("".join(c for c in unicodedata.normalize("NFKC", t).casefold() if c.isalnum()) for t in (one, other))
    return bool(a and b) and a not in b and b not in a and not same_numbers(one, other)


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
        self._sentence_vectors: SentenceVectors | None = None  # of the embedder in use
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
    def sentence_vectors(self) -> SentenceVectors:
        """The passage step's sentence vectors, kept across questions (rag/passages.py)."""
        kept = self._sentence_vectors
        if kept is None or kept.embedder is not self.embedder:
            kept = self._sentence_vectors = SentenceVectors(self.embedder)
        return kept

    @property
    def index(self) -> Store:
        """The live store (FAISS folder or Milvus collection, by settings.store). While an update
        builds the next one, this is still the previous one: the lock is only for loading."""
        index = self._index
        if index is not None:
            return index
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
                self._llm = load_llm(self.settings, self.log)
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
        with self._index_lock:  # one update at a time; questions meanwhile use the index they find
            index, report = update_store(self.settings, self.embedder, self.chunking, rebuild, progress)
            self._index = index
            return report

    def folder_changes(self) -> FolderChanges:
        """What changed in the documents folder since the live index was built (cheaply: see
        rag.store.folder_changes); questions are answered from the index as it is meanwhile."""
        return folder_changes(self.index.manifest, self.settings.docs_dir)

    # -- answering ---------------------------------------------------------------------
    def scoped(
        self, question: str, scope: Scope | None = None, index: Store | None = None
    ) -> tuple[str, frozenset[str] | None]:
        """The cleaned question without its `@file` mentions, and the files of `index` (default:
        the live one) it may search: those of `scope` (None: the settings' --only/--lang) and of
        the mentions, or None for all. RagError for a pattern, language or mention that matches
        nothing."""
        question = clean_question(question)  # before the index loads: a bad question fails fast
        files = (index or self.index).files
        question, _, chosen = self._scope_of(question, scope, files)
        return clean_question(question), chosen

    def without_mentions(self, question: str, scope: Scope | None = None) -> tuple[str, Scope]:
        """The cleaned question without its `@file` mentions, and `scope` (None: the settings'
        --only/--lang) with the files they name: taken out before a follow-up is rewritten, so
        the rewrite never sees them."""
        question, scope, _ = self._scope_of(clean_question(question), scope, self.index.files)
        return question, scope

    def _scope_of(
        self, question: str, scope: Scope | None, files: dict[str, dict]
    ) -> tuple[str, Scope, frozenset[str] | None]:
        """The question without its mentions, the scope it searches and that scope's files (None:
        all). A question that names documents (rag.scope.named_files) searches those alone."""
        question, mentioned = mentions(question, files)
        scope = (Scope(self.settings.only, self.settings.languages) if scope is None else scope) | mentioned
        chosen = scope.resolve(files, self.settings.docs_dir)
        named = named_files(question, files if chosen is None else {file: files[file] for file in chosen})
        if named:
            return question, Scope(tuple(sorted(named))), named
        return question, scope, chosen

    def retrieve(
        self, question: str, k: int | None = None, mode: str | None = None, scope: Scope | None = None
    ) -> list[Hit]:
        """The k best chunks for the question, within `scope` (see `scoped`); mode is dense,
        keyword or hybrid (default: settings)."""
        question = clean_question(question)  # before the index loads: a bad question fails fast
        index = self.index  # the scope's files and the hits of one index
        question, files = self.scoped(question, scope, index)
        return self._retrieve(question, k, mode, index, files)[0]

    def _retrieve(
        self,
        question: str,
        k: int | None,
        mode: str | None,
        index: Store | None = None,
        files: frozenset[str] | None = None,
    ) -> tuple[list[Hit], np.ndarray]:
        query = self.embedder.encode_queries([question])[0]
        hits = Retriever(index or self.index, self.embedder).search(
            question, k or self.settings.k, mode or self.settings.retrieval, query, files
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
        scope: Scope | None = None,
    ) -> Iterator[Event]:
        """The answer's events; `scope` limits the documents searched (see `scoped`)."""
        started = time.perf_counter()
        elapsed = lambda: (time.perf_counter() - started) * 1000
        question = clean_question(question)  # before the index loads: a bad question fails fast
        # One index for the whole question: the folder watcher or the library may swap in a new
        # one meanwhile, and hits of the old one must be read in the old one (the scope too).
        index = self.index
        question, files = self.scoped(question, scope, index)
        searched = None if files is None else tuple(sorted(files))
        language = question_language(question)
        timings: dict[str, float] = {}
        with timed(timings, "retrieve"):
            hits, query = self._retrieve(question, k, None, index, files)
        translated = None
        translating = not retrieve_only and self.settings.search_translation == "auto"
        if translating and (target := search_language(language, index.files, files)):
            with timed(timings, "translate_question"):
                translated = self._question_in(question, target)
        if translated:
            # The question's own hits first, then those of its translation it did not find.
            with timed(timings, "retrieve"):
                more, translated_query = self._retrieve(translated, k, None, index, files)
            have = {(h.chunk.file, h.chunk.first_piece) for h in hits}
            hits = hits + [h for h in more if (h.chunk.file, h.chunk.first_piece) not in have]
            query = np.stack([query, translated_query])
        yield Retrieved(hits)
        if retrieve_only:
            timings["total"] = timings["retrieve"]
            yield Done(Answer(question, None, False, [], hits, language, timings, searched=searched))
            return
        with timed(timings, "passages"):
            passages = select_passages(
                question,
                query,
                hits,
                index,
                self.embedder,
                self.settings.passages,
                self.settings.passage_tokens,
                self.sentence_vectors,
            )
        probabilities: dict[str, float] | None = None  # of each reply start, once the model is asked

        def finish(**fields) -> Done:
            timings.setdefault("first_token", elapsed())
            timings["total"] = elapsed()
            return Done(
                Answer(
                    question=question,
                    hits=hits,
                    language=language,
                    timings_ms=timings,
                    passages=passages,
                    searched=searched,
                    searched_as=translated,
                    choice_probabilities=probabilities,
                    **fields,
                )
            )

        def not_found(answerable: float | None = None, gain: float | None = None, sure: float | None = None) -> Done:
            return finish(
                text=prompts.not_found(language),
                abstained=True,
                citations=[],
                reason=NOT_FOUND,
                answerable=answerable,
                question_gain=gain,
                confidence=sure,
            )

        if not passages or passages[0].cosine < self.threshold(self.settings.min_similarity):
            yield not_found()
            return
        messages = prompts.messages(question, [p.text for p in passages])
        max_tokens = max_tokens or self.settings.max_tokens
        temperature = self.settings.temperature if temperature is None else temperature
        with self._generation_lock:
            probabilities = self.llm.choose(messages, prompts.CHOICE_PREFIX, prompts.choices(len(passages)))
            answerable = None if probabilities is None else 1.0 - probabilities[prompts.NONE]
            if answerable is not None and answerable < self.settings.min_answerable:
                yield not_found(answerable)
                return
            copied, copy_probability = None, None
            made: dict[int, Copied] = {}  # the copies made for this answer, by passage: none is made twice
            for prefix, constraint in self._answer_attempts(passages, probabilities):
                pieces: list[str] = []
                grammar, copy_from = (constraint, None) if isinstance(constraint, str) else (None, constraint)
                stream = self.llm.stream(
                    messages, max_tokens, temperature, grammar=grammar, prefix=prefix, copy_from=copy_from
                )
                for piece in stream:
                    timings.setdefault("first_token", elapsed())
                    pieces.append(piece)
                    yield Token(piece)
                copied = self._copied(prefix + "".join(pieces), question, passages, index)
                if copied is not None and copy_from is not None:
                    copy_probability = copy_probability_of(copy_from)
                    made[copied.n] = copied
                if copied is None or copied.problem is None:
                    break  # no passage answers, or a usable copy
            if copied is not None and copied.problem is None and probabilities is not None:
                with timed(timings, "next_copy"):
                    copied, copy_probability = self._next_copy(
                        messages, copied, copy_probability, question, passages, probabilities, index, made
                    )
            if copied is not None and copied.problem is None and copied.span:
                with timed(timings, "copy_choice"):
                    copied, copy_probability = self._likeliest_copy(
                        messages, copied, copy_probability, question, passages, index, made
                    )
            gain = sure = None
            if copied is not None and copied.problem is None and answerable is not None and copied.span:
                with timed(timings, "question_gain"):
                    gain = question_gain(self.llm, question, passages, copied)
                if gain is not None:
                    sure = confidence(answerable, gain, self.settings.gain_weight)
                    if sure < self.settings.min_confidence:
                        yield not_found(answerable, gain, sure)
                        return
            other = None
            if copied is not None and copied.problem is None and probabilities is not None:
                with timed(timings, "disagreement"):
                    other = self._disagreeing(messages, copied, question, passages, probabilities, index, made)
            if copied is not None and copied.problem is None and copied.needs_translation(language):
                with timed(timings, "translate"):
                    translation, translation_probability = self._translate(messages, copied, language)
                if translation_probability is not None and translation_probability < self.settings.min_translated:
                    translation = None  # the copy alone rather than a translation the model is unsure of
                if translation is not None and not keeps_numbers(translation, copied.span):
                    translation = None  # "120亿" for "120 million": the copy alone rather than a wrong number
            else:
                translation, translation_probability = None, None
        if copied is None:
            yield not_found(answerable)
            return
        truncated = bool(pieces) and self.llm.count_tokens("".join(pieces)) >= max_tokens
        if copied.problem is None and copy_probability is not None and copy_probability < self.settings.min_copied:
            copied = replace(copied, problem="the model itself is not sure the copied text answers the question")
        if copied.problem:
            yield finish(
                text=prompts.unverified(language),
                abstained=True,
                citations=[],
                reason=UNVERIFIED,
                why=copied.problem,
                passage=passages[0],
                unsupported=[copied.span] if copied.span else [],
                answerable=answerable,
                copy_probability=copy_probability,
                question_gain=gain,
                confidence=sure,
            )
            return
        citations = [_citation(1, copied, passages, index)]
        if other is not None:
            citations.append(_citation(2, other, passages, index))
        text = f"{translation} («{copied.span}» [1])" if translation else f"{copied.span} [1]"
        yield finish(
            text=text,
            abstained=False,
            citations=citations,
            truncated=truncated,
            answerable=answerable,
            copied=copied.span,
            translation=translation,
            translation_probability=translation_probability,
            copy_probability=copy_probability,
            question_gain=gain,
            confidence=sure,
            disagreements=[] if other is None else [(other.span, 2)],
        )

    # Passages tried in turn when a copy from the chosen one is no answer (bounded: each try is
    # a generation the user waits for).
    ATTEMPTS = 2

    def _answer_attempts(
        self, passages: list[Passage], probabilities: dict[str, float] | None
    ) -> Iterator[tuple[str, str | prompts.CopySource]]:
        """(reply prefix, what holds the answer to a passage's text) for each try: the passages in
        the model's order of preference, each copied from; or once, a grammar for the whole reply,
        for a backend that cannot be given the start of its reply."""
        if probabilities is None:
            yield "", prompts.grammar([p.text for p in passages])
            return
        for choice in ranked_choices(probabilities, len(passages), self.settings.passage_prior)[: self.ATTEMPTS]:
            yield _copy_attempt(choice, passages)

    def _copied(self, reply: str, question: str, passages: list[Passage], index: Store) -> Copied | None:
        """What a reply "[n] copied text" copied, from where, and what is wrong with it; None for "[0]"."""
        chosen = re.match(r"\s*\[\s*(\d+)\s*\]\s*(.*)", reply, re.DOTALL)
        if chosen is None or chosen.group(1) == prompts.NONE or not 1 <= int(chosen.group(1)) <= len(passages):
            return None
        n, span = int(chosen.group(1)), " ".join(chosen.group(2).split())
        source = passages[n - 1]
        paragraph = index.paragraph(source.file, source.piece).text
        quote = quote_of(span, paragraph)
        # A backend that does not hold the reply to the passage (a server ignoring the grammar)
        # may write anything: what the paragraph does not hold is not shown.
        problem = problem_with_span(span, question) or (
            problem_with_quote(quote) if quote else "the answer is not copied from the cited passage"
        )
        return Copied(n, span, quote or source.quote, detect_language(source.text), problem)

    def _copy_from(
        self,
        messages: list[dict[str, str]],
        choice: str,
        question: str,
        passages: list[Passage],
        index: Store,
        start_rank: int = 0,
    ) -> tuple[Copied | None, prompts.CopySource]:
        """The answer copied from passage `choice` (greedily, from the model's `start_rank`-th
        likeliest first token), and the source it was held to (with the copy's log-probabilities)."""
        prefix, source = _copy_attempt(choice, passages, start_rank)
        reply = "".join(self.llm.stream(messages, self.settings.max_tokens, 0.0, prefix=prefix, copy_from=source))
        return self._copied(prefix + reply, question, passages, index), source

    def _next_copy(
        self,
        messages: list[dict[str, str]],
        copied: Copied,
        probability: float | None,
        question: str,
        passages: list[Passage],
        probabilities: dict[str, float],
        index: Store,
        made: dict[int, Copied],
    ) -> tuple[Copied, float | None]:
        """The copy from the model's next choice of passage instead of `copied` (from its first),
        when the next passage's weight times its copy's own probability to the power
        `copy_weight` is the greater: a passage the model barely prefers but cannot copy an
        answer from with confidence gives way to one it can. The next copy is made only when it
        could win (its probability is at most 1)."""
        weight, prior = self.settings.copy_weight, self.settings.passage_prior
        ranked = ranked_choices(probabilities, len(passages), prior)
        if not weight or probability is None or len(ranked) < 2 or int(ranked[0]) != copied.n:
            return copied, probability
        first, following = (passage_weight(probabilities, choice, prior) for choice in ranked[:2])
        if first * probability**weight >= following:
            return copied, probability
        other, source = self._copy_from(messages, ranked[1], question, passages, index)
        other_probability = copy_probability_of(source)
        if other is not None:
            made[other.n] = other
        if other is None or other.problem is not None or other_probability is None:
            return copied, probability
        if following * other_probability**weight > first * probability**weight:
            return other, other_probability
        return copied, probability

    # Copies weighed from the passage an answer is copied from, each starting at another of the
    # model's likeliest first tokens (chosen on the public dev split against 3 and 4: as good, and
    # each costs a generation and a scoring).
    COPY_STARTS = 2

    def _likeliest_copy(
        self,
        messages: list[dict[str, str]],
        copied: Copied,
        probability: float | None,
        question: str,
        passages: list[Passage],
        index: Store,
        made: dict[int, Copied],
    ) -> tuple[Copied, float | None]:
        """Of `copied` and the copies from its passage that start at the model's next likeliest
        first tokens, the one the model finds likeliest as a whole after the question, its end
        included. Greedy copying commits to the likeliest first token, and the likeliest answer
        may start at another ("and" before "betacoronavirus"); the next token is often the same
        word spelt in other tokens, a copy that is then not weighed again. `copied` stands when
        the backend cannot score a reply."""
        given = copy_logprob(self.llm, question, passages, copied)
        if given is None:
            return copied, probability
        best = (given, copied, probability)
        for rank in range(1, self.COPY_STARTS):
            other, source = self._copy_from(messages, str(copied.n), question, passages, index, rank)
            if other is None or other.problem is not None or other.n != copied.n or other.span == copied.span:
                continue
            score = copy_logprob(self.llm, question, passages, other)
            if score is not None and score > best[0]:
                best = (score, other, copy_probability_of(source))
        _, chosen, chosen_probability = best
        made[chosen.n] = chosen
        return chosen, chosen_probability

    # The share of the model's choice another passage needs for its own answer to be looked at.
    DISAGREEING_SHARE = 0.25

    def _disagreeing(
        self,
        messages: list[dict[str, str]],
        copied: Copied,
        question: str,
        passages: list[Passage],
        probabilities: dict[str, float],
        index: Store,
        made: dict[int, Copied],
    ) -> Copied | None:
        """The answer of another passage the model also chose (by its own probability), copied
        from that passage, when it says something else than `copied`; None when none does."""
        others = [
            choice
            for choice in prompts.choices(len(passages))[1:]
            if int(choice) != copied.n
            and probabilities[choice] >= self.DISAGREEING_SHARE
            and passages[int(choice) - 1].file != passages[copied.n - 1].file
        ]
        if not others:
            return None
        choice = max(others, key=probabilities.__getitem__)
        other = made.get(int(choice))
        if other is None:
            other, _ = self._copy_from(messages, choice, question, passages, index)
        if other is None or other.problem is not None or not differ(other.span, copied.span):
            return None
        return other

    def _question_in(self, question: str, language: str) -> str | None:
        """The question in `language`, to search with beside the question itself (one short
        generation); None when the model gives back the question."""
        # No grammar: constrained sampling took twice as long for the same translations; the
        # first line is the translation, so the generation stops there.
        text = ""
        with self._generation_lock:
            for piece in self.llm.stream(
                prompts.search_translation_messages(question, language), QUESTION_TRANSLATION_TOKENS, 0.0
            ):
                text += piece
                if "\n" in text.strip():
                    break
        translated = " ".join(text.strip().split("\n")[0].split())
        return translated if translated and translated != question else None

    def _translate(
        self, messages: list[dict[str, str]], copied: Copied, language: str
    ) -> tuple[str | None, float | None]:
        """The copied phrase in the question's language (a second, short generation, a turn after
        the answer's), or None when the model gives back the phrase itself; and the model's own
        probability of it per token (None from a backend that cannot read it)."""
        reply = f"{prompts.CHOICE_PREFIX}{copied.n}] {copied.span}"
        logprobs: list[float] = []
        pieces = self.llm.stream(
            prompts.translation_messages(messages, reply, copied.span, language),
            TRANSLATION_TOKENS,
            0.0,
            grammar=prompts.translation_grammar(),
            logprobs=logprobs,
        )
        translation = " ".join("".join(pieces).split())
        if not translation or translation == copied.span:
            return None, None
        return translation, per_token(logprobs)

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
