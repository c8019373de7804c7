"""Paragraph numbering of the real seeds and the rules for unusual files."""

from pathlib import Path

import pytest

from rag.documents import document_files, read_documents
from rag.errors import RagError

from .conftest import SEEDS


def non_blank_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_every_seed_is_read_with_paragraphs_numbered_from_one():
    documents, skipped = read_documents(SEEDS)
    assert skipped == []
    assert [d.file for d in documents] == sorted(p.name for p in SEEDS.glob("*.txt"))
    for document in documents:
        lines = non_blank_lines(SEEDS / document.file)
        assert [p.number for p in document.paragraphs] == list(range(1, len(lines) + 1))
        assert [p.text for p in document.paragraphs] == lines


def test_known_paragraphs_of_the_seeds():
    documents = {d.file: d for d in read_documents(SEEDS)[0]}
    indonesian = documents["000_25ef5ea761165839.txt"].paragraphs
    assert indonesian[4].text.startswith("- Pengembangan Codex: Produk lengkap dibangun dan diluncurkan dalam 7 minggu")
    assert indonesian[4].number == 5
    # Lines holding only non-breaking spaces are blank: the Korean file has 68 paragraphs, not 69.
    assert len(documents["001_4708e06e0a8d51e4.txt"].paragraphs) == 68


def test_languages_detected_per_document():
    languages = {d.file[:3]: d.language for d in read_documents(SEEDS)[0]}
    assert languages["000"] == "id"
    assert languages["001"] == "ko"
    assert languages["003"] == "ko"


def test_unusual_files_are_skipped_or_reported(tmp_path):
    (tmp_path / "good.md").write_text("# Title\n\nFirst paragraph.\n", encoding="utf-8")
    (tmp_path / "empty.txt").write_text("  \n\u00a0\n", encoding="utf-8")
    (tmp_path / "binary.txt").write_bytes(b"\x00\x01\x02binary")
    (tmp_path / "latin1.txt").write_bytes("café au lait".encode("latin-1"))
    (tmp_path / "copy.md").write_text("# Title\n\nFirst paragraph.\n", encoding="utf-8")
    (tmp_path / "notes.pdf").write_bytes(b"%PDF")
    (tmp_path / ".hidden.txt").write_text("secret", encoding="utf-8")
    documents, skipped = read_documents(tmp_path)
    assert [d.file for d in documents] == ["copy.md", "latin1.txt"]
    reasons = {s.file: s.reason for s in skipped}
    assert reasons["empty.txt"] == "empty"
    assert "binary" in reasons["binary.txt"]
    assert "UTF-8" in reasons["latin1.txt"]
    assert "same content as copy.md" in reasons["good.md"]
    assert documents[1].paragraphs[0].text == "caf\ufffd au lait"


def test_symlinks_leading_outside_the_folder_are_not_followed(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("secret outside the documents folder", encoding="utf-8")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "inside.txt").write_text("inside", encoding="utf-8")
    (docs / "link.txt").symlink_to(outside)
    (docs / "alias.txt").symlink_to(docs / "inside.txt")
    assert [p.name for p in document_files(docs)] == ["alias.txt", "inside.txt"]


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(RagError, match="documents folder not found"):
        read_documents(tmp_path / "nope")
