"""A citation's ¶N is the paragraph a reader finds in the file: a paragraph cut for length
(rag/documents.py) keeps one number for all its pieces, so the paragraphs after it keep theirs."""

from __future__ import annotations

import ctypes
import json
from pathlib import Path

import pytest

from rag.documents import MAX_PARAGRAPH_CHARS, read_documents, split_paragraphs

from .fakes import FakeEmbedder, FakeLLM

# Five paragraphs; the 2nd and 3rd are each cut into two pieces, so the 5th is the 7th piece.
SECOND = " ".join(
    f"In {1900 + i} the harbour of Quillport shipped {i + 3} thousand tonnes of grain." for i in range(40)
)
THIRD = " ".join(f"The lighthouse keeper logged storm number {i + 1} on the northern cliffs." for i in range(45))
PARAGRAPHS = [
    "Quillport, a harbour town.",
    SECOND,
    THIRD,
    "Ferries leave for the islands twice a day.",
    "The Zorblax museum opened in 2031 beside the old customs house.",
]
FIVE = "\n".join(PARAGRAPHS) + "\n"
QUESTION = "When did the Zorblax museum open beside the customs house?"


def test_the_pieces_of_a_cut_paragraph_share_its_number():
    assert all(MAX_PARAGRAPH_CHARS < len(p) < 2 * MAX_PARAGRAPH_CHARS for p in (SECOND, THIRD))
    paragraphs = split_paragraphs("five.txt", FIVE)
    assert [p.number for p in paragraphs] == [1, 2, 2, 3, 3, 4, 5]
    assert [p.piece for p in paragraphs] == [1, 2, 3, 4, 5, 6, 7]
    for number, text in enumerate(PARAGRAPHS, 1):  # nothing lost, nothing moved
        assert " ".join(p.text for p in paragraphs if p.number == number) == text


class ChoosingLLM(FakeLLM):
    """The fake LLM as a backend that cannot give option probabilities: the answer step then
    asks for the whole reply, "[n] copied text", under a grammar."""

    def choose(self, messages, prefix, options):
        return None


def _assistant(root: Path, docs: Path, reply: str = ""):
    from rag.assistant import Assistant
    from rag.settings import load_settings

    settings = load_settings(environ={}, docs_dir=docs, index_dir=root / "index", min_similarity=-1.0)
    return Assistant(settings, log=lambda message: None, embedder=FakeEmbedder(), llm=ChoosingLLM(reply))


@pytest.fixture
def five_docs(tmp_path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "five.txt").write_text(FIVE, encoding="utf-8")
    return docs


def test_the_fifth_paragraph_is_cited_as_5_through_a_real_index(tmp_path, five_docs):
    def reply(messages):
        text = messages[-1]["content"]
        n = next(n for n in range(1, 10) if f"[{n}]" in text and "Zorblax" in text.split(f"[{n}]", 1)[1][:300])
        return f"[{n}] in 2031"

    assistant = _assistant(tmp_path, five_docs, reply)
    assistant.update_index()
    retrieved = assistant.ask(QUESTION, retrieve_only=True).to_json()["retrieved"]
    museum = next(hit for hit in retrieved if "Zorblax" in hit["text"])
    assert museum["paragraph_end"] == 5
    assert all(1 <= hit["paragraph_start"] <= hit["paragraph_end"] <= 5 for hit in retrieved)

    answer = assistant.ask(QUESTION)
    assert not answer.abstained, answer
    found = answer.to_json()
    assert [p["paragraph"] for p in found["passages"] if "Zorblax" in p["text"]] == [5]
    (citation,) = found["citations"]
    assert (citation["file"], citation["paragraph"]) == ("five.txt", 5)
    assert citation["text"] == PARAGRAPHS[4] and citation["quote"] in citation["text"]
    assert answer.citations[0].location == "five.txt ¶5"
    info = assistant.index.files["five.txt"]
    assert (info["paragraphs"], info["pieces"]) == (5, 7)


def test_a_cut_paragraph_is_looked_up_piece_by_piece_under_its_number(tmp_path, five_docs):
    from rag.index import load_index

    assistant = _assistant(tmp_path, five_docs)
    assistant.update_index()
    index = load_index(tmp_path / "index")  # as written to disk
    documents, _ = read_documents(five_docs)
    assert [index.paragraph("five.txt", p.piece) for p in documents[0].paragraphs] == list(documents[0].paragraphs)
    assert index.paragraphs_of("five.txt") == list(documents[0].paragraphs)
    assert {(c.first, c.last) for c in index.chunks} <= {(a, b) for a in range(1, 6) for b in range(a, 6)}


def test_an_index_of_the_previous_format_is_rebuilt_saying_why(tmp_path, five_docs, monkeypatch):
    import rag.index
    import rag.store
    from rag.errors import RagError

    with monkeypatch.context() as before:  # format 3: each piece of a cut paragraph counted as a ¶
        before.setattr(rag.store, "INDEX_FORMAT", 3)
        before.setattr(rag.index, "INDEX_FORMAT", 3)
        _assistant(tmp_path, five_docs).update_index()
    assistant = _assistant(tmp_path, five_docs)
    with pytest.raises(RagError, match="built by another version of polyglot-rag; run `rag index` to rebuild it"):
        assistant.ask(QUESTION, retrieve_only=True)
    report = assistant.update_index()
    assert report.rebuilt_reason == f"the index in {tmp_path / 'index'} was built by another version of polyglot-rag"
    assert assistant.index.paragraph("five.txt", 7).number == 5


def text_pdf(pages: list[list[list[str]]], target: Path) -> None:
    """A PDF with a text layer, written by PDFium: per page, paragraphs of lines, a paragraph
    gap between them wider than a line's."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as raw

    pdf = pdfium.PdfDocument.new()
    for paragraphs in pages:
        page = pdf.new_page(595, 842)
        y = 800
        for lines in paragraphs:
            for line in lines:
                text = raw.FPDFPageObj_NewTextObj(pdf.raw, b"Helvetica", ctypes.c_float(10))
                wide = ctypes.create_string_buffer((line + "\0").encode("utf-16-le"))
                raw.FPDFText_SetText(text, ctypes.cast(wide, ctypes.POINTER(raw.FPDF_WCHAR)))
                raw.FPDFPageObj_Transform(text, 1, 0, 0, 1, 40, y)
                raw.FPDFPage_InsertObject(page.raw, text)
                y -= 12
            y -= 24
        raw.FPDFPage_GenerateContent(page.raw)
    pdf.save(str(target))


def test_a_pdf_keeps_page_and_paragraph_after_a_cut_paragraph(tmp_path, monkeypatch):
    import rag.readers
    from rag.citations import location
    from rag.index import load_index

    # Every page has a text layer: no OCR, so no need to ask Tesseract (a process) for its languages.
    monkeypatch.setattr(rag.readers, "ocr_languages", lambda: ())
    docs = tmp_path / "docs"
    docs.mkdir()
    long = [" ".join(f"Berth {i} loaded crate {j}." for j in range(9)) for i in range(30)]  # one paragraph, cut
    text_pdf(
        [[["Harbour report"], long, ["Ferries leave twice a day."]], [["The museum opened in 2031."]]], docs / "r.pdf"
    )
    (document,), skipped = read_documents(docs)
    assert not skipped
    places = [(p.page, p.number) for p in document.paragraphs]
    assert places[0] == (1, 1) and places[-2:] == [(1, 3), (2, 4)]
    assert {place for place in places[1:-2]} == {(1, 2)} and len(places) > 4  # the cut paragraph's pieces

    _assistant(tmp_path, docs).update_index()
    index = load_index(tmp_path / "index")
    last = index.paragraph("r.pdf", len(document.paragraphs))
    assert location(last.file, last.number, last.page) == "r.pdf p.2 ¶4"
    ferries = index.paragraph("r.pdf", len(document.paragraphs) - 1)
    assert location(ferries.file, ferries.number, ferries.page) == "r.pdf p.1 ¶3"


def test_the_chat_shows_a_cut_paragraph_whole_under_its_number(five_docs):
    from rag.citations import Citation
    from ui import render

    paragraphs = split_paragraphs("five.txt", FIVE)
    second_piece = paragraphs[2]  # the second piece of ¶2
    quote = second_piece.text.split(". ")[1] + "."
    citation = Citation(1, "five.txt", 2, second_piece.text, quote)
    card = render.citation_card(1, citation, paragraphs, {"language": "en"})
    assert '<span class="src-para">¶2</span>' in card
    context = card.split('class="src-context"', 1)[1]
    rows = context.split('<div class="ctx')[1:]
    assert [row.split('class="ctx-n">', 1)[1].split("<", 1)[0] for row in rows if "ctx-n" in row] == ["¶1", "¶2", "¶3"]
    cited = next(row for row in rows if row.startswith(' ctx-cited"'))
    assert "¶2" in cited and cited.count("<mark") == 1 and render.escape(quote) in cited
    assert render.escape(paragraphs[1].text) in cited  # the paragraph's first piece beside it


def test_gold_evidence_names_the_paragraph_and_the_index_is_checked_by_it(tmp_path, five_docs):
    from harness.evaluation import check_index
    from harness.gold import load_gold

    in_second_piece = SECOND.rsplit(". ", 3)[1] + "."
    rows = [
        {"id": "a", "question": QUESTION, "lang": "en", "file": "five.txt", "kind": "number",
         "evidence": "The Zorblax museum opened in 2031", "answers": ["2031"]},
        {"id": "b", "question": "How much grain?", "lang": "en", "file": "five.txt", "kind": "number",
         "evidence": in_second_piece, "answers": ["42"]},
    ]  # fmt: skip
    gold = tmp_path / "gold.jsonl"
    gold.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    items = load_gold(gold, five_docs)
    assert [item.evidence_paragraphs for item in items] == [(5,), (2,)]
    assistant = _assistant(tmp_path, five_docs)
    assistant.update_index()
    check_index(assistant, items)


@pytest.mark.full
def test_ask_retrieve_only_json_numbers_the_fifth_paragraph_5(tmp_path, five_docs, shared_assistant):
    from .test_cli import run

    shared_assistant(docs_dir=five_docs, index_dir=tmp_path / "index").update_index()
    status, stdout, stderr = run("ask", "--index", str(tmp_path / "index"), "--json", "--retrieve-only", QUESTION)
    assert status == 0, stderr
    retrieved = json.loads(stdout)["retrieved"]
    museum = next(hit for hit in retrieved if "Zorblax" in hit["text"])
    assert museum["paragraph_end"] == 5
    assert all(1 <= hit["paragraph_start"] <= hit["paragraph_end"] <= 5 for hit in retrieved)
