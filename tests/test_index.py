"""Index build, reload, incremental update, atomic replacement and corruption detection.

The mechanics of the index folder, with the stand-in embedder of tests/fakes.py (fast layer);
indexing with the real embedder is what the full layer's session index and `rag index` do.
"""

import hashlib
import json
import shutil

import numpy as np
import pytest

from rag.chunking import ChunkingSettings, chunk_document
from rag.documents import read_documents
from rag.errors import RagError
from rag.index import CURRENT, INDEX_FORMAT, OWNED, load_index, update_index, write_index

from .fakes import FakeEmbedder, paged_documents, small_docs

CHUNKING = ChunkingSettings(128, 16)


@pytest.fixture
def embedder():
    return FakeEmbedder()


def generation(index_dir):
    return json.loads((index_dir / CURRENT).read_text())["generation"]


def test_build_then_reload_gives_the_same_index(docs_copy, tmp_path, embedder):
    index_dir = tmp_path / "index"
    built, report = update_index(docs_copy, index_dir, embedder, CHUNKING)
    assert report.rebuilt_reason == "no index yet"
    assert len(report.embedded_files) == 5 and report.chunks_embedded == len(built.chunks)
    loaded = load_index(index_dir)
    assert loaded.chunks == built.chunks
    assert loaded.vectors.ntotal == len(built.chunks)
    assert set(loaded.files) == {p.name for p in docs_copy.iterdir()}
    first = loaded.chunks[0]
    assert (
        loaded.paragraph(first.file, first.first_piece).text in first.text
        or first.text in loaded.paragraph(first.file, first.first_piece).text
    )
    # A search with a chunk's own embedding finds that chunk first, at cosine 1.
    vector = loaded.raw_vectors()[3]
    row, centred = loaded.search(vector, 1)[0]
    assert row == 3
    assert abs(loaded.cosine(vector, loaded.chunks[row], centred) - 1.0) < 1e-4
    # Restricted to another language, it is not found.
    other = next(language for language in loaded.rows_by_language if language != loaded.chunks[3].language)
    assert 3 not in {r for r, _ in loaded.search(vector, 10, language=other)}


def test_update_re_embeds_only_the_changed_file_and_drops_removed_ones(docs_copy, tmp_path, embedder):
    index_dir = tmp_path / "index"
    before, _ = update_index(docs_copy, index_dir, embedder, CHUNKING)
    unchanged, report = update_index(docs_copy, index_dir, embedder, CHUNKING)
    assert not report.changed and report.chunks_embedded == 0
    assert unchanged.folder == before.folder  # nothing rewritten

    changed = docs_copy / "003_15cb4250a3f963ee.txt"
    changed.write_text(
        changed.read_text(encoding="utf-8") + "\n추가된 문단: 새로운 사실이 있습니다.\n", encoding="utf-8"
    )
    (docs_copy / "004_0d217c6e9b2bf852.txt").unlink()
    after, report = update_index(docs_copy, index_dir, embedder, CHUNKING)
    assert report.embedded_files == ["003_15cb4250a3f963ee.txt"]
    assert report.removed_files == ["004_0d217c6e9b2bf852.txt"]
    assert report.chunks_embedded == after.files["003_15cb4250a3f963ee.txt"]["chunks"]
    assert "004_0d217c6e9b2bf852.txt" not in {c.file for c in after.chunks}
    # Reused embeddings are those of the previous index (only the language offsets moved).
    old_rows = {c: i for i, c in enumerate(before.chunks)}
    old_vectors, new_vectors = before.raw_vectors(), after.raw_vectors()
    for row, chunk in enumerate(after.chunks):
        if chunk.file == "000_25ef5ea761165839.txt":
            np.testing.assert_allclose(new_vectors[row], old_vectors[old_rows[chunk]], atol=1e-6)
    assert len(list(index_dir.glob("gen-*"))) == 1  # the old generation is gone


def test_other_chunking_rebuilds_everything(docs_copy, tmp_path, embedder):
    index_dir = tmp_path / "index"
    update_index(docs_copy, index_dir, embedder, CHUNKING)
    _, report = update_index(docs_copy, index_dir, embedder, ChunkingSettings(96, 0))
    assert report.rebuilt_reason == "chunking changed"
    assert len(report.embedded_files) == 5


class FailingEmbedder:
    """An embedder failing after its first batch: a build that dies half way."""

    def __init__(self, real):
        self.real, self.id, self.dim, self.calls = real, real.id, real.dim, 0

    def count_tokens(self, text):
        return self.real.count_tokens(text)

    def encode_passages(self, texts, **options):
        self.calls += 1
        if self.calls > 1:
            raise RuntimeError("simulated crash during embedding")
        return self.real.encode_passages(texts, **options)


def test_a_build_that_dies_leaves_the_old_index_intact(docs_copy, tmp_path, embedder):
    index_dir = tmp_path / "index"
    before, _ = update_index(docs_copy, index_dir, embedder, CHUNKING)
    with pytest.raises(RuntimeError, match="simulated crash"):
        update_index(docs_copy, index_dir, FailingEmbedder(embedder), CHUNKING, rebuild=True)
    after = load_index(index_dir)
    assert after.folder == before.folder
    assert after.chunks == before.chunks


def test_corrupt_files_are_detected_and_rebuild_recovers(docs_copy, tmp_path, embedder):
    index_dir = tmp_path / "index"
    built, _ = update_index(docs_copy, index_dir, embedder, CHUNKING)
    vectors = built.folder / "vectors.faiss"
    vectors.write_bytes(vectors.read_bytes()[:-100])
    with pytest.raises(RagError, match=r"vectors.faiss is corrupt .*rag index --rebuild"):
        load_index(index_dir)
    _, report = update_index(docs_copy, index_dir, embedder, CHUNKING)
    assert "corrupt" in report.rebuilt_reason
    assert load_index(index_dir).vectors.ntotal == len(built.chunks)

    chunks = load_index(index_dir).folder / "chunks.jsonl"
    chunks.write_text(chunks.read_text(encoding="utf-8").replace("OpenAI", "OpenA1", 1), encoding="utf-8")
    with pytest.raises(RagError, match="chunks.jsonl is corrupt"):
        load_index(index_dir)


def test_missing_or_garbled_index_is_a_clear_error(tmp_path):
    with pytest.raises(RagError, match="no index"):
        load_index(tmp_path)
    (tmp_path / CURRENT).write_text("{not json")
    with pytest.raises(RagError, match="corrupt"):
        load_index(tmp_path)


def test_a_folder_that_is_not_an_index_is_refused_and_left_untouched(docs_copy, tmp_path, embedder):
    notes = tmp_path / "notes"
    (notes / "gen-2025-budget").mkdir(parents=True)
    (notes / "gen-2025-budget" / "plan.txt").write_text("the budget plan\n")
    (notes / "gen-notes.txt").write_text("my notes\n")
    before = sorted(p.relative_to(notes) for p in notes.rglob("*"))
    with pytest.raises(RagError, match="not empty and holds no index"):
        update_index(docs_copy, notes, embedder, CHUNKING)
    assert sorted(p.relative_to(notes) for p in notes.rglob("*")) == before


def test_a_folder_holding_only_the_library_records_is_built_into(docs_copy, tmp_path, embedder):
    """With Milvus, or after `rag index --include` before any build, library.json is written
    into the index folder first: a FAISS build there is no build into a stranger's folder."""
    index_dir = tmp_path / "index"
    index_dir.mkdir()
    (index_dir / ".lock").touch()
    (index_dir / "library.json").write_text('{"excluded": [], "uploaded": {}}')
    index, _ = update_index(docs_copy, index_dir, embedder, CHUNKING)
    assert index.manifest["files"]
    assert (index_dir / "library.json").read_text() == '{"excluded": [], "uploaded": {}}'


@pytest.mark.parametrize("where", ["same", "index inside docs", "docs inside index"])
def test_index_and_documents_folders_must_be_separate(tmp_path, embedder, where):
    docs = tmp_path / "notes"
    docs.mkdir()
    (docs / "gen-notes.txt").write_text("my notes about the budget\n")
    index_dir = {"same": docs, "index inside docs": docs / "index", "docs inside index": tmp_path}[where]
    with pytest.raises(RagError, match="must be separate"):
        update_index(docs, index_dir, embedder, CHUNKING)
    assert (docs / "gen-notes.txt").read_text() == "my notes about the budget\n"
    assert sorted(p.name for p in docs.iterdir()) == ["gen-notes.txt"]


def test_an_index_folder_that_is_a_file_is_refused(docs_copy, tmp_path, embedder):
    target = tmp_path / "index"
    target.write_text("not a folder")
    with pytest.raises(RagError, match="is a file"):
        update_index(docs_copy, target, embedder, CHUNKING)
    assert target.read_text() == "not a folder"


def test_only_generations_the_index_made_are_ever_deleted(docs_copy, tmp_path, embedder):
    index_dir = tmp_path / "index"
    update_index(docs_copy, index_dir, embedder, CHUNKING)
    # Things a user (or another program) put into the index folder afterwards, named like ours.
    (index_dir / "gen-mine").mkdir()
    (index_dir / "gen-mine" / "plan.txt").write_text("keep me")
    (index_dir / "CURRENT.tmp-1").write_text("keep me too")
    # A leftover of a killed build of ours (created and recorded, never made current).
    leftover = index_dir / "gen-20000101-000000-deadbeef"
    from rag.index import _own

    _own(index_dir, leftover.name).mkdir()
    after, _ = update_index(docs_copy, index_dir, embedder, CHUNKING, rebuild=True)
    assert not leftover.exists()
    assert (index_dir / "gen-mine" / "plan.txt").read_text() == "keep me"
    assert (index_dir / "CURRENT.tmp-1").read_text() == "keep me too"
    assert sorted(p.name for p in index_dir.glob("gen-2*")) == [after.folder.name]


def test_an_index_built_before_ownership_was_recorded_is_used_and_never_deleted(docs_copy, tmp_path, embedder):
    index_dir = tmp_path / "index"
    first, _ = update_index(docs_copy, index_dir, embedder, CHUNKING)
    (index_dir / "OWNED").unlink()
    second, report = update_index(docs_copy, index_dir, embedder, CHUNKING, rebuild=True)
    # Its generation was never recorded as built here, so it stays; the new one is ours.
    assert first.folder.exists() and second.folder.exists()
    third, _ = update_index(docs_copy, index_dir, embedder, CHUNKING, rebuild=True)
    assert first.folder.exists() and not second.folder.exists() and third.folder.exists()


def test_a_pointer_naming_a_users_folder_never_gets_it_deleted(docs_copy, tmp_path, embedder):
    """The folder claim once adopted whatever CURRENT named, and the next build removed it."""
    home = tmp_path / "h"
    (home / "Documents").mkdir(parents=True)
    (home / "Documents" / "thesis.txt").write_text("thesis")
    (home / CURRENT).write_text('{"generation": "Documents", "manifest_sha256": "x"}')
    with pytest.raises(RagError, match="not empty and holds no index"):
        update_index(docs_copy, home, embedder, CHUNKING)
    assert (home / "Documents" / "thesis.txt").read_text() == "thesis"
    assert (home / CURRENT).read_text() == '{"generation": "Documents", "manifest_sha256": "x"}'


def test_names_written_into_owned_by_hand_are_not_deleted(docs_copy, tmp_path, embedder):
    index_dir = tmp_path / "index"
    update_index(docs_copy, index_dir, embedder, CHUNKING)
    (index_dir / "Documents").mkdir()
    (index_dir / "Documents" / "thesis.txt").write_text("thesis")
    # Named like a generation, but holding a file no build writes.
    lookalike = index_dir / "gen-20000101-000000-deadbeef"
    lookalike.mkdir()
    (lookalike / "thesis.txt").write_text("thesis")
    owned = json.loads((index_dir / OWNED).read_text())
    (index_dir / OWNED).write_text(json.dumps([*owned, "Documents", lookalike.name]))
    update_index(docs_copy, index_dir, embedder, CHUNKING, rebuild=True)
    assert (index_dir / "Documents" / "thesis.txt").read_text() == "thesis"
    assert (lookalike / "thesis.txt").read_text() == "thesis"


def test_chunks_embedded_elsewhere_are_written_as_the_index_a_build_would_make(tmp_path, embedder):
    docs = small_docs(tmp_path / "docs")
    documents, _ = read_documents(docs)
    chunks = [c for d in documents for c in chunk_document(d, CHUNKING, embedder.count_tokens)]
    index_dir = tmp_path / "index"
    write_index(index_dir, documents, chunks, embedder.encode_passages([c.text for c in chunks]), embedder, CHUNKING)
    written = load_index(index_dir)
    assert written.chunks == chunks
    assert {name: info["chunks"] for name, info in written.files.items()} == {
        d.file: sum(c.file == d.file for c in chunks) for d in documents
    }
    # A build over the same documents finds nothing to do: the same manifest, the same files.
    again, report = update_index(docs, index_dir, embedder, CHUNKING)
    assert not report.changed and again.folder == written.folder
    with pytest.raises(RagError, match="2 vectors for"):
        write_index(tmp_path / "other", documents, chunks, np.zeros((2, embedder.dim), np.float32), embedder, CHUNKING)


def index_copy(seeds_index, tmp_path):
    index_dir = tmp_path / "index"
    shutil.copytree(seeds_index, index_dir, symlinks=True)
    return index_dir


@pytest.mark.parametrize("damage", ["folder", "symlink loop", "symlink to another index"])
def test_a_pointer_that_is_not_a_file_is_reported_then_moved_aside_by_the_next_build(
    docs_copy, tmp_path, seeds_index, embedder, damage
):
    index_dir = index_copy(seeds_index, tmp_path)
    other = shutil.copytree(seeds_index, tmp_path / "other")
    current = index_dir / CURRENT
    current.unlink()
    if damage == "folder":
        current.mkdir()
        (current / "x").write_text("x")
    else:
        current.symlink_to(CURRENT if damage == "symlink loop" else other / CURRENT)
    with pytest.raises(RagError, match=r"index pointer .* is not a file.*run `rag index` to repair it"):
        load_index(index_dir)
    index, report = update_index(docs_copy, index_dir, embedder, CHUNKING)
    assert "CURRENT was not a file; moved aside to CURRENT.set-aside-" in report.rebuilt_reason
    assert index.folder.parent == index_dir and load_index(index_dir).folder == index.folder
    [aside] = index_dir.glob("CURRENT.set-aside-*")  # kept: it was not the build's to delete
    assert (aside / "x").read_text() == "x" if damage == "folder" else aside.is_symlink()


@pytest.mark.parametrize(
    "generation", ["../other/gen-x", "/tmp/gen-x", "gen-x/../../other", "manifest.json", "gen-", 5, None]
)
def test_the_pointer_must_name_a_generation_folder_inside_the_index(tmp_path, seeds_index, generation):
    index_dir = index_copy(seeds_index, tmp_path)
    pointer = json.loads((index_dir / CURRENT).read_text())
    (index_dir / CURRENT).write_text(json.dumps({**pointer, "generation": generation}))
    with pytest.raises(RagError, match="corrupt"):
        load_index(index_dir)


def test_a_generation_that_is_a_symlink_is_not_followed(tmp_path, seeds_index):
    index_dir = index_copy(seeds_index, tmp_path)
    other = shutil.copytree(seeds_index, tmp_path / "other")
    pointer = json.loads((index_dir / CURRENT).read_text())
    (index_dir / "gen-elsewhere").symlink_to(other / pointer["generation"], target_is_directory=True)
    (index_dir / CURRENT).write_text(json.dumps({**pointer, "generation": "gen-elsewhere"}))
    with pytest.raises(RagError, match="gen-elsewhere is a symlink"):
        load_index(index_dir)


@pytest.mark.parametrize(
    "manifest",
    [
        [1, 2],
        "text",
        None,
        {"format": INDEX_FORMAT, "checksums": [], "files": {}},
        {"format": INDEX_FORMAT, "checksums": {}, "files": [], "embedder": {}},
    ],
)
def test_a_manifest_of_the_wrong_shape_is_a_one_line_error(tmp_path, seeds_index, manifest):
    index_dir = index_copy(seeds_index, tmp_path)
    pointer = json.loads((index_dir / CURRENT).read_text())
    data = json.dumps(manifest).encode()
    (index_dir / pointer["generation"] / "manifest.json").write_bytes(data)
    (index_dir / CURRENT).write_text(json.dumps({**pointer, "manifest_sha256": hashlib.sha256(data).hexdigest()}))
    with pytest.raises(RagError, match="is not an index manifest; rebuild with `rag index --rebuild`"):
        load_index(index_dir)


def test_a_folder_without_a_readable_document_is_a_one_line_error(tmp_path, embedder):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "empty.txt").write_text(" \n")
    (docs / "self.txt").symlink_to("self.txt")
    (docs / "notes.odt").write_bytes(b"PK")  # not a format that is read
    (docs / "report.pdf").write_bytes(b"%PDF")
    with pytest.raises(
        RagError,
        match=r"no readable document in .*docs "
        r"\(3 skipped, e\.g\. empty\.txt: empty\); add documents",
    ):
        update_index(docs, tmp_path / "index", embedder, CHUNKING)
    assert not (tmp_path / "index").exists()


def test_files_are_hashed_once_per_generation_until_one_changes(docs_copy, tmp_path, embedder, monkeypatch):
    import rag.index

    index_dir = tmp_path / "index"
    built, _ = update_index(docs_copy, index_dir, embedder, CHUNKING)
    load_index(index_dir)  # verifies every file and records their sizes and mtimes
    hashed = []
    real_sha256 = rag.index._sha256
    monkeypatch.setattr(rag.index, "_sha256", lambda path: hashed.append(path.name) or real_sha256(path))
    load_index(index_dir)
    assert hashed == ["manifest.json"]  # the manifest, against CURRENT, every time; nothing else
    paragraphs = built.folder / "paragraphs.jsonl"
    paragraphs.write_text(paragraphs.read_text(encoding="utf-8").replace("OpenAI", "OpenA1", 1), encoding="utf-8")
    with pytest.raises(RagError, match="paragraphs.jsonl is corrupt"):  # same size, written since: hashed
        load_index(index_dir)


def test_paragraphs_come_back_with_their_page_and_ocr_flag(tmp_path, embedder):
    documents = paged_documents()
    chunks = [c for d in documents for c in chunk_document(d, CHUNKING, embedder.count_tokens)]
    write_index(
        tmp_path / "index", documents, chunks, embedder.encode_passages([c.text for c in chunks]), embedder, CHUNKING
    )
    index = load_index(tmp_path / "index")
    assert [index.paragraph(p.file, p.piece) for d in documents for p in d.paragraphs] == [
        p for d in documents for p in d.paragraphs
    ]
    assert index.paragraph("report.pdf", 3).page == 2 and index.paragraph("report.pdf", 3).ocr
    assert [(p.number, p.piece) for p in index.paragraphs_of("report.pdf")][-2:] == [(4, 4), (4, 5)]
    assert index.paragraph("notes.txt", 1).page is None
    assert index.files["report.pdf"]["title"] == "Harbour report" and index.files["report.pdf"]["reader"] == "pdf 1"


def test_a_poor_title_an_older_rule_stored_is_shown_as_the_rule_now_makes_it(tmp_path, seeds_index):
    # A PDF printed by Chromium has the title `about:blank`; an index built before the title rule
    # knew it keeps it until `rag index` runs again, and every citation showed it.
    index_dir = index_copy(seeds_index, tmp_path)
    pointer = json.loads((index_dir / CURRENT).read_text())
    path = index_dir / pointer["generation"] / "manifest.json"
    manifest = json.loads(path.read_text())
    file = sorted(manifest["files"])[0]
    good = manifest["files"][file]["title"]
    manifest["files"][file]["title"] = "about:blank"
    data = json.dumps(manifest).encode()
    path.write_bytes(data)
    (index_dir / CURRENT).write_text(json.dumps({**pointer, "manifest_sha256": hashlib.sha256(data).hexdigest()}))
    assert load_index(index_dir).files[file]["title"] == good
