"""The store seam's shared logic (rag/store.py): what an update reuses and re-embeds, how
vectors are embedded, and the language offsets every store subtracts. Fast: the stand-in
embedder and a store held in memory."""

from __future__ import annotations

import numpy as np
import pytest

from rag.chunking import Chunk, ChunkingSettings
from rag.documents import Document, Paragraph, Skipped
from rag.errors import RagError
from rag.store import (
    Store,
    centred,
    embed,
    language_offsets,
    manifest_of,
    new_manifest,
    plan_update,
    plan_vectors,
    rebuild_reason,
)

from .fakes import FakeEmbedder

CHUNKING = ChunkingSettings(128, 16)


def document(file: str, sha: str, *texts: str, reader: str = "text 1", language: str = "en") -> Document:
    paragraphs = tuple(Paragraph(file, n, n, text) for n, text in enumerate(texts, 1))
    return Document(file, sha * 64, language, paragraphs, texts[0], reader)


class MemoryStore(Store):
    """The rows of an earlier build, held in memory: what plan_update and plan_vectors read."""

    def __init__(self, manifest: dict, chunks: list[Chunk], vectors: np.ndarray) -> None:
        self.manifest, self.chunks, self.vectors = manifest, chunks, vectors

    def chunks_by_file(self):
        out: dict[str, list] = {}
        for row, chunk in enumerate(self.chunks):
            out.setdefault(chunk.file, []).append((row, chunk))
        return out

    def raw_vectors(self, rows):
        return self.vectors[rows]


def built(documents: list[Document], embedder: FakeEmbedder) -> MemoryStore:
    plan = plan_update(documents, [], new_manifest(embedder, CHUNKING, "flat"), None, None, CHUNKING, embedder)
    return MemoryStore(plan.manifest, plan.chunks, plan_vectors(plan, None, embedder, None))


def test_an_update_reuses_unchanged_files_and_re_embeds_changed_new_and_re_read_ones():
    embedder = FakeEmbedder()
    old = built(
        [
            document("same.txt", "a", "Tea farmers buy forecasts.", "They pay in rupiah."),
            document("changed.txt", "b", "The harbour opened in 1932."),
            document("gone.txt", "c", "This file is removed."),
            document("scan.pdf", "d", "Text read without OCR.", reader="pdf 1"),
        ],
        embedder,
    )
    documents = [
        document("same.txt", "a", "Tea farmers buy forecasts.", "They pay in rupiah."),
        document("changed.txt", "e", "The harbour opened in 1933."),
        document("scan.pdf", "d", "Text read with OCR this time.", reader="pdf 1 ocr"),
        document("new.txt", "f", "A new file about ships."),
    ]
    skipped = [Skipped("empty.txt", "empty")]
    stages = []
    embedder.passages_encoded = 0
    plan = plan_update(
        documents,
        skipped,
        new_manifest(embedder, CHUNKING, "flat"),
        old,
        None,
        CHUNKING,
        embedder,
        lambda stage, done, total: stages.append((stage, done, total)),
    )
    report = plan.report
    assert report.unchanged_files == ["same.txt"]
    assert report.embedded_files == ["changed.txt", "scan.pdf", "new.txt"]
    assert report.removed_files == ["gone.txt"] and report.skipped == skipped
    assert [chunk.file for chunk in plan.chunks] == ["same.txt", "changed.txt", "scan.pdf", "new.txt"]
    # the unchanged file's rows come from its old rows; only the others are embedded
    assert plan.reused == [(0, 0)] and plan.to_embed == [1, 2, 3]
    assert (report.chunks_total, report.chunks_embedded) == (4, 3)
    assert plan.manifest["files"]["scan.pdf"]["reader"] == "pdf 1 ocr" and "gone.txt" not in plan.manifest["files"]
    # chunking reports its progress in characters, ending at the total of the files chunked
    assert stages and all(stage == "Chunking" for stage, _, _ in stages) and stages[-1][1] == stages[-1][2]

    vectors = plan_vectors(plan, old, embedder, None)
    assert embedder.passages_encoded == 3  # nothing of same.txt
    assert np.array_equal(vectors[0], old.vectors[0])
    assert np.allclose(vectors[1:], embedder.encode_queries([c.text for c in plan.chunks[1:]]))


def test_a_changed_build_setting_is_a_reason_to_rebuild():
    embedder = FakeEmbedder()
    manifest = new_manifest(embedder, CHUNKING, "flat")
    assert rebuild_reason(manifest, new_manifest(embedder, CHUNKING, "flat")) is None
    assert rebuild_reason(manifest, new_manifest(embedder, CHUNKING, "hnsw")) == "index_type changed"
    assert (
        rebuild_reason(manifest, new_manifest(FakeEmbedder(32), CHUNKING, "flat"))
        == "embedder changed from fake-embedder-64 to fake-embedder-32"
    )
    assert rebuild_reason(manifest, new_manifest(embedder, ChunkingSettings(64, 8), "flat")) == "chunking changed"
    assert rebuild_reason({**manifest, "format": 0}, manifest) == "format changed"


def test_embedding_goes_in_length_sorted_batches_and_keeps_each_texts_row():
    class Recording(FakeEmbedder):
        batches: list[list[str]] = []

        def encode_passages(self, texts, batch_size=32, show_progress=False):
            self.batches.append(texts)
            return super().encode_passages(texts, batch_size)

    embedder = Recording()
    texts = ["a b c d e", "a", "a b c", "a b", "a b c d"]
    progress = []
    vectors = embed(embedder, texts, lambda *step: progress.append(step), batch_size=2)
    assert embedder.batches == [["a", "a b"], ["a b c", "a b c d"], ["a b c d e"]]
    assert np.allclose(vectors, embedder.encode_queries(texts))
    assert progress == [("Embedding", 2, 5), ("Embedding", 4, 5), ("Embedding", 5, 5)]


def test_language_offsets_are_shrunk_for_small_languages_and_centring_keeps_true_cosines():
    rng = np.random.default_rng(0)
    big = rng.standard_normal((90, 8)) + np.array([2.0] + [0.0] * 7)  # a language with its own mean
    small = rng.standard_normal((10, 8)) - np.array([2.0] + [0.0] * 7)
    vectors = np.vstack([big, small]).astype(np.float32)
    languages = ["en"] * 90 + ["ko"] * 10
    offsets = language_offsets(vectors, languages, prior=10)
    overall = vectors.mean(axis=0)
    assert np.allclose(offsets["en"], 0.9 * (big.mean(axis=0) - overall), atol=1e-5)
    assert np.allclose(offsets["ko"], 0.5 * (small.mean(axis=0) - overall), atol=1e-5)  # 10 / (10 + 10)
    kept = centred(vectors, languages, offsets)
    assert np.allclose(kept[0], vectors[0] - offsets["en"]) and np.allclose(kept[-1], vectors[-1] - offsets["ko"])
    # a store's cosine() adds the offset back: the true inner product of query and chunk
    store = MemoryStore({"files": {}}, [], vectors)
    store.offsets = offsets
    query = rng.standard_normal(8).astype(np.float32)
    chunk = Chunk("x.txt", 1, 1, "x", "ko", 1, 1)
    assert store.cosine(query, chunk, float(kept[-1] @ query)) == pytest.approx(float(vectors[-1] @ query), abs=1e-4)
    assert language_offsets(np.zeros((0, 8), np.float32), []) == {}


def test_a_manifest_for_vectors_embedded_elsewhere_counts_chunks_per_file():
    embedder = FakeEmbedder()
    documents = [document("a.txt", "a", "One.", "Two."), document("b.txt", "b", "Three.")]
    chunks = [
        Chunk("a.txt", 1, 1, "One.", "en", 1, 1),
        Chunk("a.txt", 2, 2, "Two.", "en", 2, 2),
        Chunk("b.txt", 1, 1, "x", "en", 1, 1),
    ]
    manifest = manifest_of(documents, chunks, np.zeros((3, 64), np.float32), embedder, CHUNKING, "flat")
    assert {f: e["chunks"] for f, e in manifest["files"].items()} == {"a.txt": 2, "b.txt": 1}
    assert manifest["files"]["a.txt"]["paragraphs"] == 2 and manifest["embedder"] == {"id": embedder.id, "dim": 64}
    with pytest.raises(RagError, match="2 vectors for 3 chunks"):
        manifest_of(documents, chunks, np.zeros((2, 64), np.float32), embedder, CHUNKING, "flat")
