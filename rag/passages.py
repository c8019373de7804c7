"""From retrieved chunks to the few short passages the LLM reads, one paragraph each.

The default LLM is a 0.5B model: it answers best from a handful of short texts, and
prompt length drives the time to the first token. So the paragraphs of the retrieved
chunks, and their neighbours (a list item's heading, the sentence after a colon), are
ranked by how well their best sentence matches the question, and the best few are
passed on, long ones trimmed around that sentence. Because a passage is exactly one
paragraph (one piece of a cut one), a citation [n] names its file and paragraph without
guessing.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .citations import location
from .embedding import Embedder
from .keywords import adds_nothing, tokenize
from .language import detect_language, named_language
from .retrieval import NAMED_LANGUAGE_BOOST, Hit
from .store import Store
from .text import split_sentences

# The passage step embeds the candidate paragraphs' sentences; these caps bound its cost
# whatever the documents hold (one enormous paragraph made every question touching it slow).
# Above the seeds' largest figures, so ordinary documents are unaffected.
MAX_SENTENCES_PER_PARAGRAPH = 16
MAX_SENTENCES_PER_QUESTION = 96

# Sentence vectors kept for later questions (questions in a session keep reading the same
# paragraphs, and embedding their sentences is most of this step's time); a few MB.
CACHED_SENTENCES = 4096

# Weight of the chunk's retrieval score against the paragraph's own best sentence.
CHUNK_WEIGHT = 0.5
# A neighbour paragraph outside the retrieved chunk starts slightly behind it.
NEIGHBOUR_PENALTY = 0.02


@dataclass(frozen=True)
class Passage:
    file: str
    paragraph: int  # its number in the file (¶), as rag.documents.Paragraph.number
    text: str  # what the LLM reads: the paragraph, trimmed around `quote` when long
    quote: str  # the paragraph's sentence that best matches the question
    score: float  # ranking score (centred, see rag/index.py)
    cosine: float  # cosine similarity of `quote` to the question
    page: int | None = None  # from 1 for PDFs, None for formats without pages
    ocr: bool = False  # read by OCR from a scanned page
    # Which piece of the file it is, for looking it up (rag.documents.Paragraph.piece); None
    # when only shown, not looked up (an answer shown again from a saved conversation).
    piece: int | None = None

    @property
    def location(self) -> str:
        return location(self.file, self.paragraph, self.page, self.ocr)

    def to_json(self) -> dict:
        return {
            "file": self.file,
            "paragraph": self.paragraph,
            "page": self.page,
            "ocr": self.ocr,
            "text": self.text,
            "cosine": round(self.cosine, 4),
        }


class SentenceVectors:
    """The embedder's passage vectors of sentences, the most recently used kept: the embedder is
    deterministic, so a kept vector is the one it would give again. Safe across threads."""

    def __init__(self, embedder: Embedder, size: int = CACHED_SENTENCES) -> None:
        self.embedder, self.size = embedder, size
        self._kept: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def encode(self, sentences: list[str]) -> np.ndarray:
        with self._lock:
            missing = [s for s in dict.fromkeys(sentences) if s not in self._kept]
        # Outside the lock: another question's lookups need not wait for the model.
        made = dict(zip(missing, self.embedder.encode_passages(missing))) if missing else {}
        with self._lock:
            self._kept.update(made)
            vectors = []
            for sentence in sentences:
                vector = self._kept.get(sentence)
                if vector is None:  # let go meanwhile, to make room for other questions' sentences
                    vector = self._kept[sentence] = self.embedder.encode_passages([sentence])[0]
                self._kept.move_to_end(sentence)
                vectors.append(vector)
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)
        return np.stack(vectors) if vectors else np.zeros((0, self.embedder.dim), dtype=np.float32)


def trim_around(sentences: list[str], best: int, budget: int, count_tokens: Callable[[str], int]) -> str:
    """The best sentence plus its neighbours, alternately after and before, within budget tokens."""
    first = last = best
    used = count_tokens(sentences[best])
    while True:
        fitting = [
            i for i in (last + 1, first - 1) if 0 <= i < len(sentences) and used + count_tokens(sentences[i]) <= budget
        ]
        if not fitting:
            break
        used += count_tokens(sentences[fitting[0]])
        first, last = min(first, fitting[0]), max(last, fitting[0])
    return " ".join(sentences[first : last + 1])


def _sentences_to_embed(
    question: str, keys: list[tuple[str, int]], sentences: dict[tuple[str, int], list[str]]
) -> list[tuple[tuple[str, int], int, str]]:
    """(paragraph, sentence index, sentence) to embed, paragraphs in the given order (best
    first) until MAX_SENTENCES_PER_QUESTION; of a paragraph with more than
    MAX_SENTENCES_PER_PARAGRAPH sentences, those sharing the most words with the question."""
    asked = set(tokenize(question))
    chosen: list[tuple[tuple[str, int], int, str]] = []
    for key in keys:
        numbered = list(enumerate(sentences[key]))
        if len(numbered) > MAX_SENTENCES_PER_PARAGRAPH:
            by_overlap = sorted(numbered, key=lambda item: -len(asked.intersection(tokenize(item[1]))))
            numbered = sorted(by_overlap[:MAX_SENTENCES_PER_PARAGRAPH])
        chosen.extend((key, i, s) for i, s in numbered[: MAX_SENTENCES_PER_QUESTION - len(chosen)])
    return chosen


def select_passages(
    question: str,
    query: np.ndarray,
    hits: list[Hit],
    index: Store,
    embedder: Embedder,
    count: int,
    budget_tokens: int,
    sentence_vectors: SentenceVectors | None = None,
) -> list[Passage]:
    """The `count` paragraphs around the hits that best answer the question, best first.
    `query` is the question's embedding, or several (the question and its translation, one
    row each): a sentence is then scored by the one it matches best."""
    prior: dict[tuple[str, int], float] = {}  # (file, piece) -> score
    for hit in hits:
        chunk = hit.chunk
        total = index.files[chunk.file]["pieces"]
        for piece in range(max(1, chunk.first_piece - 1), min(total, chunk.last_piece + 1) + 1):
            inside = chunk.first_piece <= piece <= chunk.last_piece
            score = hit.score - (0.0 if inside else NEIGHBOUR_PENALTY)
            prior[(chunk.file, piece)] = max(score, prior.get((chunk.file, piece), -1.0))
    if not prior:
        return []
    keys = list(prior)
    sentences = {key: split_sentences(index.paragraph(*key).text) for key in keys}
    flat = _sentences_to_embed(question, sorted(keys, key=lambda key: -prior[key]), sentences)
    embedded = {key for key, _, _ in flat}
    keys = [key for key in keys if key in embedded]
    texts = [s for _, _, s in flat]
    vectors = sentence_vectors.encode(texts) if sentence_vectors is not None else embedder.encode_passages(texts)
    queries = np.atleast_2d(query)
    cosines = vectors @ queries.T  # sentences x queries
    languages = [detect_language(sentence) for _, _, sentence in flat]
    shifts = np.stack(
        [
            index.offsets[language] @ queries.T if language in index.offsets else np.zeros(len(queries))
            for language in languages
        ]
    )
    # Each query's scores from their own mean over the candidates (with one query, a constant
    # that changes no ranking): a translation scores every sentence lower or higher than the
    # question does, and the best of the two would otherwise always be the same query's.
    scores = cosines - shifts
    scores -= scores.mean(axis=0)
    named = named_language(question)
    best: dict[tuple[str, int], tuple[float, int, float]] = {}  # key -> (centred, sentence index, cosine)
    for row, ((key, i, _), language) in enumerate(zip(flat, languages)):
        by = int(np.argmax(scores[row]))
        centred, cosine = float(scores[row, by]), float(cosines[row, by])
        centred += NAMED_LANGUAGE_BOOST if language == named else 0.0
        if key not in best or centred > best[key][0]:
            best[key] = (centred, i, cosine)
    ranked = sorted(keys, key=lambda key: -(CHUNK_WEIGHT * prior[key] + (1 - CHUNK_WEIGHT) * best[key][0]))
    passages, seen = [], set()
    asked = set(tokenize(question))
    for key in ranked:
        paragraph = index.paragraph(*key)
        text = paragraph.text
        # The same line twice in a file (titles repeated) says nothing new, nor does a line the
        # question already says (a title it quotes or names: it matches best and answers nothing).
        if text in seen or adds_nothing(text, asked):
            continue
        seen.add(text)
        centred, i, cosine = best[key]
        trimmed = trim_around(sentences[key], i, budget_tokens, embedder.count_tokens)
        passages.append(
            Passage(
                paragraph.file,
                paragraph.number,
                trimmed,
                sentences[key][i],
                CHUNK_WEIGHT * prior[key] + (1 - CHUNK_WEIGHT) * centred,
                cosine,
                paragraph.page,
                paragraph.ocr,
                paragraph.piece,
            )
        )
        if len(passages) == count:
            break
    return passages
