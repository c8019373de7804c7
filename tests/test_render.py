"""ui/render.py: every document text, file name, question and answer reaches the browser as
text. HTML is parsed back with the standard library's parser and chat Markdown rendered by a
CommonMark renderer: hostile input shows as written and makes no element or attribute."""

from __future__ import annotations

from html.parser import HTMLParser
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from rag.assistant import Answer
from rag.chunking import Chunk
from rag.citations import Citation
from rag.documents import Paragraph
from ui import render

HOSTILE = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "\"><svg onload=alert(1)> & 'quotes'",
    "[click](javascript:alert(1)) ![x](http://evil/x.png) <http://evil>",
    "**bold** _em_ `code` ~~gone~~ $x$ | a | b |",
    "# heading",
    "1. item",
    "- item",
    "> quote",
    "===",
    "a\\b\\",
]


class Elements(HTMLParser):
    """The elements, attributes and text of an HTML fragment."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []
        self.text: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes.extend(attrs)

    def handle_data(self, data):
        self.text.append(data)


def shown_markdown(markdown: str) -> Elements:
    return Elements(MarkdownIt("commonmark").render(markdown))


def assert_no_injected_markup(parsed: Elements, allowed: set[str]) -> None:
    assert set(parsed.tags) <= allowed, parsed.tags
    assert not [name for name, _ in parsed.attributes if name.startswith("on") or name in ("src", "href")]


def test_markdown_escaping_shows_each_hostile_text_as_written():
    for text in HOSTILE:
        parsed = shown_markdown(render.md_escape(text))
        assert_no_injected_markup(parsed, {"p"})
        assert "".join(parsed.text).strip() == text, text


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab1 _*#<>&[]()!`|~$\\-+=.:/'\"", min_size=1, max_size=40))
def test_markdown_escaping_shows_any_line_of_markdown_punctuation_as_written(line):
    line = " ".join(line.split())  # Markdown collapses runs of spaces and strips a line's ends
    if line:
        parsed = shown_markdown(render.md_escape(line))
        assert_no_injected_markup(parsed, {"p"})
        assert "".join(parsed.text).strip() == line


def test_an_answer_links_only_its_resolved_markers_and_escapes_the_rest():
    markdown = render.answer_markdown("Founded in 2031 [1, 2] by <b>Dewi</b> [3].", turn=4, linked=[1, 3])
    parsed = shown_markdown(markdown)
    assert [value for name, value in parsed.attributes if name == "href"] == ["#src-4-1", "#src-4-3"]
    assert (
        set(parsed.tags) == {"p", "a"} and "".join(parsed.text).strip() == "Founded in 2031 [1][2] by <b>Dewi</b> [3]."
    )


def citation(text: str, quote: str, file: str = "<img src=x onerror=alert(1)>.txt"):
    return SimpleNamespace(n=1, file=file, paragraph=2, page=None, ocr=False, text=text, quote=quote)


def test_a_citation_card_escapes_file_text_quote_and_context():
    hostile = "<script>alert(1)</script>"
    texts = ["<b>one</b>", f"Before {hostile} after.", "three"]
    paragraphs = [Paragraph("x.txt", n, n, text) for n, text in enumerate(texts, 1)]
    card = render.citation_card(3, citation(f"Before {hostile} after.", hostile), paragraphs, {"language": "en"})
    parsed = Elements(card)
    assert "script" not in parsed.tags and "img" not in parsed.tags and "b" not in parsed.tags
    assert not [name for name, _ in parsed.attributes if name.startswith("on")]
    text = "".join(parsed.text)
    assert hostile in text and "<img src=x onerror=alert(1)>.txt" in text and "<b>one</b>" in text
    assert parsed.tags.count("mark") == 2  # the quote, marked in the card and in its context


def test_the_documents_table_and_passages_escape_names_titles_and_text():
    name = '"><script>alert(1)</script>.txt'
    table = Elements(
        render.documents_table({name: {"language": "<i>", "title": "<img src=x onerror=1>", "paragraphs": 2}})
    )
    assert "script" not in table.tags and "img" not in table.tags and "i" not in table.tags
    assert ("title", name) in table.attributes and name in "".join(table.text)
    hit = SimpleNamespace(
        chunk=Chunk(name, 1, 2, "<svg onload=alert(1)>", "en", 1, 2), score=0.5, dense=0.4, keyword=None
    )
    row = Elements(render.passage_row(1, hit))
    assert "svg" not in row.tags and "<svg onload=alert(1)>" in "".join(row.text)
    for html in (
        render.status("error", "<script>x</script>"),
        render.facts([("<b>", "<i>")]),
        render.header("<u>", ["<s>"]),
    ):
        assert not {"script", "b", "i", "u", "s"} & set(Elements(html).tags)


# -- what the page says about an answer: names, times, languages ----------------------------
KOREAN = "오픈AI의 사내 문화는 매우 빠르게 움직인다."
CITATION = Citation(1, "000_25ef5ea761165839.txt", 3, KOREAN, KOREAN)
FILES = {"000_25ef5ea761165839.txt": {"title": "오픈AI 사내 문화", "language": "ko"}}


def test_the_time_shown_is_the_wait_with_a_follow_ups_rewriting_as_its_own_step():
    shown = render.wait_times({"rewrite": 5500.0, "total": 9600.0, "waited": 15400.0})
    assert ">rewrote the question 5.5 s · answered in 9.6 s · waited 15.4 s<" in shown
    assert "rewrote" not in render.wait_times({"rewrite": 0.0, "total": 9600.0, "waited": 9700.0})


def test_sources_name_a_document_by_its_title_with_the_file_name_on_hover():
    card = render.citation_card(1, CITATION, None, FILES[CITATION.file])
    assert '<span class="src-file" title="000_25ef5ea761165839.txt"' in card
    assert ">오픈AI 사내 문화</span>" in card
    answer = Answer("OpenAI 문화는?", "빠르게 움직인다 [1]", False, [CITATION], [], "ko")
    message = render.answer_message(answer, 1, FILES)
    assert "오픈AI 사내 문화</span> ¶3" in message and "000_25ef5ea761165839.txt ¶3" not in message
    assert 'title="000_25ef5ea761165839.txt"' in message
    # Without the index's titles, the file name, as before.
    assert "000_25ef5ea761165839.txt ¶3" in render.answer_message(answer, 1)


def test_quoted_document_text_carries_its_language():
    answer = Answer("Which culture?", "It moves fast [1]", False, [CITATION], [], "en")
    message = render.answer_message(answer, 1, FILES)
    assert f'<span lang="ko">“{KOREAN}”</span>' in message and message.startswith('<span lang="en">')
    texts = ["Plain English context.", "Another line of it.", KOREAN]
    paragraphs = [Paragraph(CITATION.file, n, n, text) for n, text in enumerate(texts, 1)]
    card = render.citation_card(1, CITATION, paragraphs, FILES[CITATION.file])
    assert f'<mark lang="ko">{KOREAN}</mark>' in card and 'class="ctx-text" lang="en"' in card


def test_a_reopened_citation_says_its_document_changed_beside_its_title():
    answer = Answer("Which culture?", "It moves fast [1]", False, [CITATION], [], "en")
    message = render.answer_message(answer, 1, FILES, {CITATION.file: "changed since"})
    assert "오픈AI 사내 문화</span> ¶3" in message and "⚠ changed since" in message
    card = render.citation_card(1, CITATION, None, FILES[CITATION.file], "changed since")
    assert "⚠ changed since" in card and ">오픈AI 사내 문화</span>" in card


def test_a_source_that_says_otherwise_is_shown_after_the_answer_with_its_own_link():
    from dataclasses import replace

    other = replace(CITATION, n=2, file="001_other.txt", quote="It took 50 days.")
    answer = Answer("How long?", "7 weeks [1]", False, [CITATION, other], [], "en", disagreements=[("50 days", 2)])
    message = render.answer_message(answer, 5, FILES)
    assert "Another source says otherwise: «50 days»" in message and "[[2]](#src-5-2)" in message
    assert "“It took 50 days.”" in message
