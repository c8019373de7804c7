"""Synthetic corpora for the bench: documents and vectors in the documents' four languages,
made from their own sentences, deterministic for a seed."""

from __future__ import annotations

import hashlib
import random
import re
from pathlib import Path

from rag.chunking import Chunk
from rag.documents import Document, Paragraph
from rag.errors import RagError

SEED = 6  # synthetic corpora and vectors are the same in every run
SYNTHETIC_LANGUAGES = ("en", "ko", "zh", "id")
PARAGRAPHS_PER_FILE = 50


_SENTENCE = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])")


def seed_sentences(documents) -> dict[str, list[str]]:
    """The documents' sentences by language (of the sentence itself), sorted, without repeats."""
    from rag.language import detect_language

    found: dict[str, set[str]] = {}
    for document in documents:
        for paragraph in document.paragraphs:
            for sentence in _SENTENCE.split(paragraph.text):
                sentence = sentence.strip()
                if len(sentence) >= 8:
                    found.setdefault(detect_language(sentence), set()).add(sentence)
    return {language: sorted(found[language]) for language in SYNTHETIC_LANGUAGES if found.get(language)}


def synthetic_paragraphs(
    sentences: dict[str, list[str]], count: int, mix: tuple[int, ...] = (1, 1, 1, 1, 2), seed: int = SEED
) -> list[tuple[str, str]]:
    """`count` (language, paragraph) pairs, the languages taking turns; each paragraph a random
    mix of a few sentences of one language. Deterministic for a given seed."""
    if not sentences:
        raise RagError("the documents have no sentences to build a synthetic corpus from")
    rng = random.Random(seed)
    languages = sorted(sentences)
    out = []
    for n in range(count):
        language = languages[n % len(languages)]
        pool = sentences[language]
        picked = [pool[rng.randrange(len(pool))] for _ in range(rng.choice(mix))]
        out.append((language, ("" if language in ("zh", "ja") else " ").join(picked)))
    return out


def write_corpus(folder: Path, paragraphs: list[tuple[str, str]], per_file: int = PARAGRAPHS_PER_FILE) -> int:
    """Files of `per_file` paragraphs each, one language per file; the number of files."""
    by_language: dict[str, list[str]] = {}
    for language, text in paragraphs:
        by_language.setdefault(language, []).append(text)
    files = 0
    for language, texts in sorted(by_language.items()):
        (folder / language).mkdir(parents=True, exist_ok=True)
        for start in range(0, len(texts), per_file):
            (folder / language / f"{language}-{start // per_file:04d}.txt").write_text(
                "\n".join(texts[start : start + per_file]) + "\n", encoding="utf-8"
            )
            files += 1
    return files


def gaussian_vectors(real, languages: list[str], count: int, out_languages: list[str], seed: int = SEED):
    """`count` unit vectors drawn, language by language, from a Gaussian with the mean and
    covariance of real chunk embeddings: random, but with the anisotropy and the language
    clusters of the real thing (isotropic random vectors have no neighbours worth finding,
    which says nothing about an approximate index's recall on embeddings)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    real = np.asarray(real, dtype=np.float64)
    labels = np.array(languages)
    vectors = np.zeros((count, real.shape[1]), dtype=np.float32)
    wanted = np.array(out_languages)
    for language in sorted(set(out_languages)):
        rows = np.flatnonzero(wanted == language)
        sample = real[labels == language] if (labels == language).sum() >= 8 else real
        mean = sample.mean(axis=0)
        covariance = np.cov(sample, rowvar=False) + 1e-6 * np.eye(real.shape[1])
        values, basis = np.linalg.eigh(covariance)
        transform = basis * np.sqrt(np.clip(values, 0, None))
        drawn = mean + rng.standard_normal((len(rows), real.shape[1])) @ transform.T
        vectors[rows] = (drawn / np.linalg.norm(drawn, axis=1, keepdims=True)).astype(np.float32)
    return vectors


def synthetic_documents(paragraphs: list[tuple[str, str]], per_file: int) -> tuple[list[Document], list[Chunk]]:
    """(language, text) paragraphs as documents of `per_file` paragraphs, one chunk per paragraph:
    an index's contents without reading or chunking files."""
    documents, chunks = [], []
    for start in range(0, len(paragraphs), per_file):
        name = f"synthetic/{start // per_file:04d}.txt"
        part = paragraphs[start : start + per_file]
        document_paragraphs = tuple(Paragraph(name, n, n, text) for n, (_, text) in enumerate(part, 1))
        chunks += [Chunk(name, n, n, text, language, n, n) for n, (language, text) in enumerate(part, 1)]
        sha = hashlib.sha256("\n".join(p.text for p in document_paragraphs).encode()).hexdigest()
        documents.append(Document(name, sha, part[0][0], document_paragraphs))
    return documents, chunks
