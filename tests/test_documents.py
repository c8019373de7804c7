"""Paragraph numbering of the real seeds and the rules for unusual files."""

import os
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from rag.documents import MAX_PARAGRAPH_CHARS, MAX_PATH_BYTES, read_documents, split_paragraphs
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


def test_symlinks_are_never_followed_and_loops_are_reported(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("secret outside the documents folder", encoding="utf-8")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "inside.txt").write_text("inside", encoding="utf-8")
    (docs / "link.txt").symlink_to(outside)
    (docs / "alias.txt").symlink_to(docs / "inside.txt")  # its target is read under its own name
    (docs / "self.txt").symlink_to("self.txt")  # a loop
    (docs / "folder").symlink_to(tmp_path, target_is_directory=True)
    documents, skipped = read_documents(docs)
    assert [d.file for d in documents] == ["inside.txt"]
    assert {(s.file, s.reason) for s in skipped} == {
        ("alias.txt", "symlink; not followed"),
        ("link.txt", "symlink; not followed"),
        ("self.txt", "symlink; not followed"),
        ("folder", "symlinked folder; not followed"),
    }


def test_a_file_flipped_to_a_symlink_while_builds_read_it_never_leaks_the_target(tmp_path):
    """The race of issue 16: a name switched between a regular file and a symlink to a secret
    while the folder is read. Bounded in time (20 s); both states are seen, the secret never is."""
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "s.txt").write_text("the vault code is 4711\n", encoding="utf-8")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "other.txt").write_text("an ordinary document\n", encoding="utf-8")
    flip, regular, link = docs / "flip.txt", docs / ".regular", docs / ".link"
    stop = threading.Event()

    def flipper() -> None:
        while not stop.is_set():  # atomic swaps; each state held briefly, so readers meet both
            regular.write_text("public text\n", encoding="utf-8")
            os.replace(regular, flip)
            time.sleep(0.001)
            link.unlink(missing_ok=True)
            link.symlink_to("../secret/s.txt")
            os.replace(link, flip)
            time.sleep(0.001)

    seen = Counter()
    thread = threading.Thread(target=flipper, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (
            min(seen["read"], seen["symlink; not followed"]) < 20 or sum(seen.values()) < 200
        ):
            documents, skipped = read_documents(docs)
            texts = " ".join(p.text for d in documents for p in d.paragraphs)
            assert "4711" not in texts
            flipped = [s.reason for s in skipped if s.file == "flip.txt"]
            seen["read" if "public text" in texts else flipped[0] if flipped else "absent"] += 1
    finally:
        stop.set()
        thread.join()
    assert seen["read"] and seen["symlink; not followed"], seen


def test_unreadable_folders_and_paths_too_long_to_open_are_reported(tmp_path, monkeypatch):
    docs = tmp_path / "docs"
    (docs / "locked").mkdir(parents=True)
    (docs / "locked" / "inside.txt").write_text("behind a lock\n", encoding="utf-8")
    (docs / "top.txt").write_text("on top\n", encoding="utf-8")
    folder = os.open(docs, os.O_RDONLY | os.O_DIRECTORY)
    depth = 0
    try:  # deeper than a path may be; made relative to open folders, as names that long cannot be opened
        while len(os.fsencode(docs)) + depth * 201 < MAX_PATH_BYTES + 200:
            os.mkdir("d" * 200, dir_fd=folder)
            child = os.open("d" * 200, os.O_RDONLY | os.O_DIRECTORY, dir_fd=folder)
            os.close(folder)
            folder, depth = child, depth + 1
            with open(os.open("deep.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=folder), "w") as handle:
                handle.write(f"level {depth}\n")
    finally:
        os.close(folder)
    real_open = os.open

    def refusing_open(path, flags, *args, **kwargs):  # as for a folder without permission (tests run as root)
        if path == "locked":
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr("rag.documents.os.open", refusing_open)
    documents, skipped = read_documents(docs)
    reasons = {s.file: s.reason for s in skipped}
    assert reasons.pop("locked") == "folder not readable (Permission denied); its files are not indexed"
    # One or two levels lie past the limit, depending on the length of the temporary folder's path.
    assert reasons and set(reasons.values()) == {f"path longer than {MAX_PATH_BYTES} bytes; not read"}
    too_long = min(reasons, key=len)
    assert len(os.fsencode(docs)) + 1 + len(too_long.encode()) > MAX_PATH_BYTES
    written = {"top.txt"} | {
        "/".join(["d" * 200] * level) + "/deep.txt" for level in range(1, max(reasons, key=len).count("/") + 1)
    }
    assert {d.file for d in documents} == written - set(reasons)


def test_lines_end_only_at_line_breaks_and_long_lines_are_cut_at_sentence_ends():
    text = "one\ftwo\x85three\u2028four\u2029five\x1csix\r\nsecond\rthird\n\n fourth \n"
    assert [p.text for p in split_paragraphs("f", text)] == [
        "one\ftwo\x85three\u2028four\u2029five\x1csix",
        "second",
        "third",
        "fourth",
    ]
    sentence = "Zorblax sells tea to farmers. "  # 30 characters
    chinese = "天气很好。"  # 5 characters
    long_line = sentence * 100 + "x" * 4500 + " word" * 500 + chinese * 500
    pieces = [p.text for p in split_paragraphs("f", long_line + "\nnext line")]
    assert all(len(p) <= MAX_PARAGRAPH_CHARS for p in pieces)
    assert pieces[:2] == [(sentence * 66).strip(), (sentence * 34).strip()]  # the last sentence end within the limit
    assert pieces[2:4] == ["x" * MAX_PARAGRAPH_CHARS] * 2  # no sentence end, no space: cut at the limit
    assert pieces[4] == "x" * 500 + " word" * 300  # no sentence end: the last space within the limit
    assert pieces[5:7] == [("word " * 200).strip() + chinese * 200, chinese * 300]  # 。 ends a sentence too
    assert "".join(pieces[:-1]).replace(" ", "") == long_line.replace(" ", "")
    assert pieces[-1] == "next line"


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(RagError, match="documents folder not found"):
        read_documents(tmp_path / "nope")


def test_titles_are_readable_never_cut_mid_word_nor_identifiers_or_hashes():
    from rag.documents import MAX_TITLE_CHARS, document_title

    titles = {d.file[:3]: d.title for d in read_documents(SEEDS)[0]}
    # A long first sentence is cut after a clause, not inside a word.
    assert titles["000"].endswith("operasi internal perusahaan…"), titles["000"]
    # "share_log" (the page's first line) is no title; the headline after it is.
    assert titles["002"] == "创始团队出走殆尽、Altman孤家寡人,高光时刻,OpenAI为何却“分崩离析”"
    assert titles["004"] == "我为什么加入 OpenAI"
    assert document_title("meeting_notes-2024.txt", None, ["share_log", "A line"]) == "meeting notes 2024"
    assert document_title("a1b2c3d4e5f6a7b8.txt", "draftVersion2", ["0x1f2e3d4c5b6a", "Harbour report"]) == (
        "Harbour report"
    )
    assert document_title("7f3e9a0b12c4d5e6.txt", None, ["https://example.com/x"]) == "7f3e9a0b12c4d5e6.txt"
    # A PDF's own title that is an address or a file name: Chromium titles a printed page
    # `about:blank`; Word's PDF printer writes "Microsoft Word - <file>".
    for own in ("about:blank", "file:///C:/Users/ana/report.html", "Microsoft Word - laporan akhir.docx"):
        assert document_title("riverside-water.pdf", own, ["Riverside Water Plant"]) == "Riverside Water Plant", own
    assert document_title("notes.pdf", "Re: the budget", ["x"]) == "Re: the budget"  # a word and a colon
    long = document_title("x.txt", None, ["word " * 60])
    assert len(long) <= MAX_TITLE_CHARS and long.endswith("word…")


def test_titles_made_by_an_older_rule_are_made_anew_without_re_embedding(tmp_path, monkeypatch):
    from rag import documents

    from .fakes import fake_assistant

    assistant = fake_assistant(tmp_path)
    assistant.update_index()
    assert not assistant.update_index().changed
    made = documents.document_title
    monkeypatch.setattr(documents, "document_title", lambda *args: "New: " + made(*args))
    report = assistant.update_index()
    assert sorted(report.retitled_files) == sorted(assistant.index.files) and report.chunks_embedded == 0
    assert all(info["title"].startswith("New: ") for info in assistant.index.files.values())
