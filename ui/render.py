"""Text and HTML for the chat page, from Answers and the index; no gradio here.

Every piece of document text, file name, question or answer goes through `escape`
(HTML) or `md_escape` (chat Markdown) before it reaches the browser: gr.HTML does not
sanitise, and a document may hold `<script>` or `<img onerror>`; they must show as text.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from itertools import groupby

from rag import prompts
from rag.citations import MARKER_GROUP, place
from rag.language import detect_language, language_name

# Paragraphs (pieces of a long one counted apart) of context shown before and after a cited one.
CONTEXT_PARAGRAPHS = 2
# Characters shown of a retrieved (uncited) passage.
PASSAGE_CHARS = 600
# Sources of this many most recent turns are kept in the panel.
KEPT_TURNS = 12

_NUMBER = re.compile(r"\d+")
# ASCII punctuation with a meaning in Markdown; a backslash makes each one literal.
_MARKDOWN = re.compile(r"([\\`*\[\]()!|~$]|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z]))")
# Line starts that Markdown reads as a heading, quote, list item or rule.
_LINE_START = re.compile(r"^(\s*(?:\d+)?)([#>+\-=.)])", re.MULTILINE)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def escape(text: object) -> str:
    return html.escape(str(text), quote=True)


def md_escape(text: str) -> str:
    """Text that chat Markdown shows exactly as written (no HTML, links, emphasis or lists)."""
    text = _MARKDOWN.sub(r"\\\1", html.escape(text, quote=False))
    return _LINE_START.sub(lambda m: m.group(1) + "\\" + m.group(2), text)


def marker_link(turn: int, n: int) -> str:
    return f"[[{n}]](#src-{turn}-{n})"


def answer_markdown(text: str, turn: int | None = None, linked: Sequence[int] = ()) -> str:
    """An answer for the chat: escaped, with its [n] markers linked to the Sources panel.

    Only markers in `linked` (the citations that resolved) become links; a group such as
    "[1, 2]" becomes "[1][2]".
    """
    parts, position = [], 0
    for match in MARKER_GROUP.finditer(text):
        parts.append(md_escape(text[position : match.start()]))
        numbers = [int(n) for n in _NUMBER.findall(match.group())]
        parts.append(
            "".join(marker_link(turn, n) if turn is not None and n in linked else md_escape(f"[{n}]") for n in numbers)
        )
        position = match.end()
    parts.append(md_escape(text[position:]))
    return "".join(parts)


def draft_markdown(text: str) -> str:
    """The reply while it is written: visibly provisional until the check settles it."""
    return (
        f'<span class="draft-label">draft, being checked against the documents</span>\n\n'
        f'<span class="draft">{md_escape(text)}</span>'
    )


def lang(text: str) -> str:
    """The `lang` attribute of a piece of document text, in the language it is written in
    (screen readers pronounce it so, browsers pick its fonts by it)."""
    return f' lang="{detect_language(text)}"'


def stale_note(change: str) -> str:
    """Said on a reopened citation whose document changed or went since the answer."""
    return f'<span class="stale">⚠ {md_escape(change)}</span>'


def _quoted(source, text: str, files: Mapping[str, Mapping]) -> str:
    """`text` quoted, with where it stands: the document's title (its file name on hover) and
    paragraph (`¶N`, or `p.PAGE ¶N` for a PDF), or `file ¶N` where the title is unknown."""
    quote = f"> <span{lang(text)}>“{md_escape(text)}”</span>  \n"
    title = (files.get(source.file) or {}).get("title")
    if not title:
        return f"{quote}> — {md_escape(source.location)}"
    where = place(source.paragraph, source.page) + (" (OCR)" if source.ocr else "")
    return f"{quote}> — {_titled(source.file, title, 'quote-source')} {md_escape(where)}"


def _titled(file: str, title: str, css_class: str | None = None) -> str:
    """A document named in a chat message: its title, with its file name on hover."""
    css = f' class="{css_class}"' if css_class else ""
    return f'<span{css} title="{escape(file)}"{lang(title)}>{md_escape(title)}</span>'


def answer_message(
    answer, turn: int, files: Mapping[str, Mapping] | None = None, changes: Mapping[str, str] | None = None
) -> str:
    """The settled reply: the checked answer with the sentences it rests on quoted verbatim, or
    a notice; a claim the check did not confirm is shown as such, never as the answer. `files`
    is the index's file table (titles, languages); `changes` (file -> what happened since)
    marks the citations of a reopened answer."""
    files, changes = files or {}, changes or {}
    parts = [
        f'<span lang="{answer.language}">{answer_markdown(answer.shown or "", turn, [c.n for c in answer.citations])}</span>'
    ]
    for c in answer.citations:
        parts.append(_quoted(c, c.quote, files) + (f"\n\n{stale_note(changes[c.file])}" if c.file in changes else ""))
    if answer.truncated:
        parts.append(f'<span class="truncated">{md_escape(prompts.truncated(answer.language))}</span>')
    if answer.passage is not None:
        passage = answer.passage
        parts.append(_quoted(passage, passage.text, files))
    for claim in answer.unsupported:
        parts.append(
            f'<span class="unverified">Not confirmed by the documents, so not given as the answer: '
            f"“{md_escape(claim)}”{f' ({md_escape(answer.why)})' if answer.why else ''}</span>"
        )
    return "\n\n".join(parts)


def rewrite_note(standalone: str) -> str:
    return f'<span class="rewrite">↳ understood as “{md_escape(standalone)}”</span>\n\n'


def searched_as_note(searched_as: str | None) -> str:
    """The question as also searched, translated into the documents' language, above its answer."""
    return f'<span class="searched-as">↳ also searched as “{md_escape(searched_as)}”</span>\n\n' if searched_as else ""


def scope_note(searched: tuple[str, ...] | None, files: Mapping[str, Mapping] | None = None) -> str:
    """The documents a scoped question searched, above its answer, by title (the file name on
    hover; `files`: the index's file table); nothing when it searched all."""
    if searched is None:
        return ""
    table = files or {}
    names = ", ".join(_titled(file, (table.get(file) or {}).get("title") or file) for file in searched[:5]) + (
        f" and {len(searched) - 5} more" if len(searched) > 5 else ""
    )
    return f'<span class="scope">searched only {plural(len(searched), "document")}: {names}</span>\n\n'


def _highlight(text: str, quote: str | None) -> str:
    if quote:
        start = text.find(quote)
        if start >= 0:
            end = start + len(quote)
            return f"{escape(text[:start])}<mark{lang(quote)}>{escape(quote)}</mark>{escape(text[end:])}"
    return escape(text)


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _context(paragraphs: Sequence, cited: int, quote: str) -> str:
    """The file's paragraph pieces around the cited one (`paragraphs[cited]`), a row per ¶:
    the pieces of a paragraph cut for length are read together again."""
    first = max(0, cited - CONTEXT_PARAGRAPHS)
    last = min(len(paragraphs), cited + CONTEXT_PARAGRAPHS + 1)
    rows = []
    for number, run in groupby(range(first, last), key=lambda i: paragraphs[i].number):
        run = list(run)
        body = " ".join(
            _highlight(paragraphs[i].text, quote) if i == cited else escape(paragraphs[i].text) for i in run
        )
        rows.append(
            f'<div class="ctx{" ctx-cited" if cited in run else ""}"><span class="ctx-n">¶{number}</span>'
            f'<span class="ctx-text"{lang(paragraphs[run[0]].text)}>{body}</span></div>'
        )
    if first > 0:
        rows.insert(0, '<div class="ctx-gap">⋯</div>')
    if last < len(paragraphs):
        rows.append('<div class="ctx-gap">⋯</div>')
    return "".join(rows)


def _place(paragraph: int, page: int | None, ocr: bool) -> str:
    """A paragraph's number, after its page for a PDF, and a mark if it was read by OCR."""
    mark = '<span class="src-ocr" title="read by OCR from a scanned page">OCR</span>' if ocr else ""
    return f'<span class="src-para">{place(paragraph, page)}</span>{mark}'


def source_name(file: str, info: Mapping | None) -> str:
    """A document as sources name it: its title, with the file name on hover (`data-file` too)."""
    title = (info or {}).get("title") or file
    return (
        f'<span class="src-file" title="{escape(file)}" data-file="{escape(file)}"{lang(title)}>{escape(title)}</span>'
    )


def citation_card(
    turn: int, citation, paragraphs: Sequence | None, info: Mapping | None, change: str | None = None
) -> str:
    """One cited passage: number, document, paragraph, text with the quote marked; opens on its
    context among the file's `paragraphs` (rag.documents.Paragraph, piece by piece). `info` is
    the document's entry in the index's file table (title, language); `change`: what happened
    to its document since (a reopened answer), said on the card."""
    language = (info or {}).get("language")
    badge = f'<span class="src-lang">{escape(language.upper())}</span>' if language else ""
    stale = f'<div class="src-stale">⚠ {escape(change)}</div>' if change else ""
    meta = (
        f'<span class="src-n">{citation.n}</span>{source_name(citation.file, info)}'
        f"{_place(citation.paragraph, citation.page, citation.ocr)}{badge}"
    )
    cited = next(
        (i for i, p in enumerate(paragraphs or ()) if p.number == citation.paragraph and p.text == citation.text), None
    )
    if cited is not None:
        context = _context(paragraphs, cited, citation.quote)
    else:  # the document changed since: show what was cited
        context = (
            f'<div class="ctx ctx-cited"><span class="ctx-text"{lang(citation.text)}>'
            f"{_highlight(citation.text, citation.quote)}"
            f"</span></div>"
        )
    return (
        f'<details class="src-card" id="src-{turn}-{citation.n}" data-n="{citation.n}">'
        f'<summary><div class="src-meta">{meta}<span class="src-toggle" aria-hidden="true"></span></div>'
        f'<div class="src-text"{lang(citation.text)}>{_highlight(citation.text, citation.quote)}</div>{stale}</summary>'
        f'<div class="src-context" title="¶{citation.paragraph} in its context">{context}</div></details>'
    )


def _scores(hit) -> str:
    parts = [f"score {hit.score:.3f}"]
    if hit.dense is not None:
        parts.append(f"cosine {hit.dense:.3f}")
    if hit.keyword is not None:
        parts.append(f"BM25 {hit.keyword:.2f}")
    return " · ".join(parts)


def passage_row(rank: int, hit, files: Mapping[str, Mapping] | None = None) -> str:
    chunk = hit.chunk
    span = f"¶{chunk.first}" if chunk.first == chunk.last else f"¶{chunk.first}–{chunk.last}"
    return (
        f'<div class="hit"><div class="hit-meta"><span class="hit-n" title="rank {rank}">#{rank}</span>'
        f'{source_name(chunk.file, (files or {}).get(chunk.file))}<span class="src-para">{span}</span>'
        f'<span class="hit-score">{escape(_scores(hit))}</span></div>'
        f'<div class="hit-text"{lang(chunk.text)}>{escape(_short(chunk.text, PASSAGE_CHARS))}</div></div>'
    )


def wait_times(timings: Mapping[str, float] | None) -> str:
    """How long the user waited, step by step: a follow-up's rewriting is a step of its own
    (`rewrite`), then the answer (`total`), then the whole wait (`waited`), in milliseconds."""
    timings = timings or {}
    steps = [
        ("rewrite", "rewrote the question {:.1f} s"),
        ("total", "answered in {:.1f} s"),
        ("waited", "waited {:.1f} s"),
    ]
    parts = [label.format(timings[key] / 1000) for key, label in steps if timings.get(key)]
    return f'<span class="src-time">{" · ".join(parts)}</span>' if parts else ""


def turn_sources(
    turn: int,
    question: str,
    answer,
    paragraphs: Mapping[str, Sequence],
    files: Mapping[str, Mapping],
    timings: Mapping[str, float] | None = None,
    changes: Mapping[str, str] | None = None,
) -> str:
    """The Sources section of one answered question (kept as HTML in the session); `files` is
    the index's file table (titles, languages); `changes` as for `answer_message`."""
    changes = changes or {}
    cards = "".join(
        citation_card(turn, c, paragraphs.get(c.file), files.get(c.file), changes.get(c.file)) for c in answer.citations
    )
    if cards:
        count = len(answer.citations)
        body = (
            f'<div class="src-heading">{count} cited passage{"s" if count != 1 else ""}'
            f'<span class="src-hint">click one to read it in context</span></div>{cards}'
        )
    elif answer.passage is not None:
        body = (
            '<div class="src-heading">Most relevant passage<span class="src-hint">no checked answer could be '
            f'written from it</span></div><div class="src-text"{lang(answer.passage.text)}>{escape(answer.passage.text)}</div>'
            f'<div class="src-meta">{source_name(answer.passage.file, files.get(answer.passage.file))}'
            f"{_place(answer.passage.paragraph, answer.passage.page, answer.passage.ocr)}</div>"
        )
    elif answer.abstained:
        body = '<div class="src-empty">The retrieved passages do not answer this question.</div>'
    else:
        body = '<div class="src-empty">The answer cites no passage.</div>'
    # The [n] markers number the passages the LLM read, not the retrieved chunks: a chunk is
    # "other" when it holds none of the cited paragraphs. Chunks are labelled by rank.
    cited_paragraphs = {(c.file, c.paragraph) for c in answer.citations}
    others = [
        (rank, h)
        for rank, h in enumerate(answer.hits, 1)
        if not any((h.chunk.file, p) in cited_paragraphs for p in range(h.chunk.first, h.chunk.last + 1))
    ]
    if others:
        rows = "".join(passage_row(n, h, files) for n, h in others)
        label = "Other retrieved passages" if answer.citations else "Retrieved passages"
        body += (
            f'<details class="src-others"><summary>{label} ({len(others)})</summary>'
            f'<div class="hits">{rows}</div></details>'
        )
    return (
        f'<section class="src-turn" data-turn="{turn}"><div class="src-question">'
        f'<span class="src-q-label">Q{turn}</span><span>{escape(_short(question, 160))}</span>'
        f"{wait_times(timings)}</div>{body}</section>"
    )


def pending_sources(question: str, hits: Sequence | None, files: Mapping[str, Mapping] | None = None) -> str:
    """The panel while an answer is being written: what was retrieved so far."""
    if hits is None:
        status = "Searching the documents…"
        rows = ""
    else:
        status = f"{plural(len(hits), 'passage')} retrieved; writing the answer…"
        rows = "".join(passage_row(n, h, files) for n, h in enumerate(hits, 1))
        rows = (
            (
                f'<details class="src-others"><summary>Retrieved passages ({len(hits)})</summary>'
                f'<div class="hits">{rows}</div></details>'
            )
            if rows
            else ""
        )
    return (
        f'<section class="src-turn src-pending"><div class="src-question">{escape(_short(question, 160))}</div>'
        f'<div class="src-status"><span class="spinner"></span>{status}</div>{rows}</section>'
    )


def sources_panel(sections: Sequence[str], pending: str | None = None) -> str:
    """All kept turns' sections; only the newest (or the pending one) is shown until a marker is clicked."""
    sections = list(sections)[-KEPT_TURNS:]
    if not sections and pending is None:
        return (
            '<div class="src-panel"><div class="src-placeholder"><div class="src-placeholder-title">'
            "Sources</div>Ask a question: the passages behind the answer appear here, with the "
            'supporting sentence highlighted. Click a <span class="pill">[1]</span> in the answer to '
            "jump to its source.</div></div>"
        )
    shown = [s.replace('<section class="src-turn"', '<section class="src-turn" hidden', 1) for s in sections]
    if pending is None and shown:
        shown[-1] = sections[-1]
    return '<div class="src-panel">' + "".join(shown) + (pending or "") + "</div>"


def documents_table(files: Mapping[str, Mapping]) -> str:
    if not files:
        return '<div class="docs-empty">No documents yet: add some above.</div>'
    rows = "".join(
        f'<tr><td class="doc-name" title="{escape(name)}">{_title(info)}{escape(name)}</td>'
        f'<td title="{escape(language_name(info.get("language", "")))}">'
        f"{escape(str(info.get('language', '')).upper())}</td>"
        f'<td class="num">{int(info.get("paragraphs", 0))}</td><td class="num">{int(info.get("chunks", 0))}</td></tr>'
        for name, info in sorted(files.items())
    )
    total = sum(int(info.get("chunks", 0)) for info in files.values())
    return (
        '<table class="docs"><thead><tr><th>File</th><th>Lang.</th><th class="num">¶</th>'
        f'<th class="num">Chunks</th></tr></thead><tbody>{rows}</tbody></table>'
        f'<div class="docs-total">{len(files)} file{"s" if len(files) != 1 else ""} · {total} chunks</div>'
    )


def _title(info: Mapping) -> str:
    """The document's readable title above its file name (an index built before titles has none)."""
    title = info.get("title")
    return f'<span class="doc-title"{lang(title)}>{escape(title)}</span>' if title else ""


def facts(pairs: Sequence[tuple[str, str]]) -> str:
    """Label/value pairs, such as the models in use."""
    items = "".join(
        f'<div class="fact"><span class="fact-label">{escape(label)}</span>'
        f'<span class="fact-value">{escape(value)}</span></div>'
        for label, value in pairs
    )
    return f'<div class="facts">{items}</div>'


def header(title: str, chips: Sequence[str]) -> str:
    chips_html = "".join(f'<span class="chip">{escape(c)}</span>' for c in chips)
    return (
        f'<div class="app-header"><div class="app-title"><span class="logo">◈</span>{escape(title)}</div>'
        f'<div class="app-sub">Answers from your documents in English, 한국어, 中文 and Bahasa Indonesia, '
        f'each statement linked to the paragraph it comes from.</div><div class="chips">{chips_html}</div></div>'
    )


STATUS_ICONS = {"ok": "✓", "warning": "⚠", "error": "✗"}


def status(kind: str, message: str) -> str:
    """One line of the documents panel's status (upload or removal result)."""
    return f'<div class="status status-{kind}">{STATUS_ICONS.get(kind, "")} {escape(message)}</div>'


def delete_question(name: str) -> str:
    """The confirmation asked before a file is deleted from the documents folder, naming it."""
    return (
        f'<div class="status status-warning">Delete the file <b>{escape(name)}</b> from the documents folder? '
        "This cannot be undone.</div>"
    )
