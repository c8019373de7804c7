"""Readers: from a file's bytes to its paragraphs, one reader per format, chosen by suffix.

Paragraph rules (docs/formats.md):
- .txt, .md: one non-blank line is one paragraph (lines end at \\n, \\r\\n or \\r).
- .pdf: per page, text lines joined into blocks; a block ends where the vertical gap to the
  next line is larger than half a line (or the next line starts higher, as in a new
  column). Lines are joined with a space, with none between CJK characters, and a
  hyphen at a line end is dropped when the next line starts in lower case. A paragraph
  never crosses a page. A page without a text layer is read by Tesseract OCR if it is
  installed, its paragraphs marked `ocr`.
- .docx: each non-empty body paragraph and each non-empty table cell, in document order.
- .html, .htm: each block element's text (headings, paragraphs, list items, cells, ...)
  in document order, after dropping navigation, scripts and styles; a <br> breaks a
  paragraph, and so does each line of a <pre>.

A reader raises Unreadable with a one-line reason for a file it cannot read; caveats
(pages skipped, pages beyond the limit) come back as notes. Libraries are imported on use.

Every reader works in time linear in its file's size, and stops after MAX_READ_SECONDS
whatever the file holds (a slow disk, OCR, a pathological file): what was read by then is
kept, and a note says where reading stopped.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import unicodedata
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from io import BytesIO

from .language import detect_language

# Limits that keep one file from holding up or exhausting a build.
MAX_TEXT_BYTES = 20 * 2**20
MAX_PACKED_BYTES = 100 * 2**20  # .pdf and .docx files
MAX_PDF_PAGES = 1000  # pages read from one PDF; the rest are reported, not read
MAX_READ_SECONDS = 120.0  # reading one file stops after this long (a PDF's OCR included)
MAX_OCR_PAGES = 50  # scanned pages OCR'd in one PDF
OCR_SECONDS_PER_PAGE = 60
OCR_DPI = 300
MAX_OCR_PIXELS = 40_000_000  # a huge page is rendered at a lower resolution instead
MAX_DOCX_UNPACKED_BYTES = 200 * 2**20  # a zip bomb unpacks to far more
# Elements nested deeper than this in an HTML page are flattened before parsing (as Chromium's
# parser caps its tree's depth): the HTML parser's work per tag grows with the depth.
MAX_HTML_DEPTH = 512
_LINE_END = re.compile(r"\r\n|\r|\n")
# Tesseract's language data for the corpus languages, used when installed.
OCR_LANGUAGES = ("eng", "kor", "chi_sim", "ind")
OCR_MISSING = "install tesseract-ocr for OCR"


class Unreadable(Exception):
    """The file cannot be read; the message is the one-line reason."""


@dataclass(frozen=True)
class Block:
    """One paragraph as a reader found it, before numbering."""

    text: str
    page: int | None = None  # from 1, for formats with pages
    ocr: bool = False  # read from an image of the page by OCR


@dataclass
class Reading:
    blocks: list[Block]
    title: str | None = None  # the document's own title or first heading, if it has one
    notes: list[str] = field(default_factory=list)  # caveats, reported with the file


@dataclass(frozen=True)
class Reader:
    read: Callable[[bytes], Reading]
    max_bytes: int
    # Names what a reading depends on besides the bytes, so a file is read again when
    # it changes (a rule, or Tesseract installed since).
    version: Callable[[], str]


def _text_version() -> str:
    return "text 1"


def _pdf_version() -> str:
    languages = ocr_languages()
    return f"pdf 1; ocr {'+'.join(languages) if languages else 'none'}"


# -- shared helpers ------------------------------------------------------------------------
class Deadline:
    """The time one file may take to read, checked between the units a reader reads (pages,
    paragraphs, lines), so that a reader stops with what it has instead of holding up a build."""

    def __init__(self) -> None:
        self.end = time.monotonic() + MAX_READ_SECONDS

    def passed(self) -> bool:
        return time.monotonic() > self.end


def stopped_note(paragraphs: int) -> str:
    return f"read in part: stopped after {paragraphs} paragraphs, reading took over {MAX_READ_SECONDS:.0f} s"


def looks_like(data: bytes) -> str | None:
    """The kind of file the first bytes show, for files that only look like their suffix."""
    head = data[:1024]
    if b"%PDF-" in head:
        return "a PDF"
    if data.startswith(b"PK\x03\x04"):
        return "a zip archive"
    if b"\x00" in data[:8192]:
        return "binary"
    return None


def decode(data: bytes) -> tuple[str, bool]:
    """The text of a file and whether it was valid UTF-8 (otherwise bad bytes become U+FFFD)."""
    try:
        return data.decode("utf-8-sig"), True
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="replace"), False


def _clean(text: str) -> str:
    return " ".join(text.split())


def _unspaced(character: str) -> bool:
    """Chinese and Japanese characters, written without spaces (Korean has spaces)."""
    return unicodedata.east_asian_width(character) in "WF" and not unicodedata.name(character, "").startswith("HANGUL")


def join_lines(lines: Iterable[str]) -> str:
    """Wrapped lines as one paragraph: a space between words, none between CJK characters,
    a line-end hyphen dropped when the word goes on in lower case."""
    text = ""
    for line in (_clean(line) for line in lines):
        if not line:
            continue
        if not text:
            text = line
        elif text[-1] in "-\u00ad\ufffe" and line[0].islower():
            text = text[:-1] + line
        elif text[-1] in "\u00ad\ufffe":  # pdfium's mark for a hyphen at a line end
            text = text[:-1] + "-" + line
        elif text[-1] == "-" or _unspaced(text[-1]) or _unspaced(line[0]):
            text += line
        else:
            text += " " + line
    return text.replace("\ufffe", "-").replace("\u00ad", "")


# -- .txt, .md -----------------------------------------------------------------------------
def read_text(data: bytes) -> Reading:
    if looks_like(data):
        raise Unreadable(
            f"binary content, not text (looks like {looks_like(data)})"
            if looks_like(data) != "binary"
            else "binary content, not text"
        )
    text, valid = decode(data)
    notes = [] if valid else ["not valid UTF-8; undecodable bytes replaced"]
    return Reading(until(Deadline(), text_blocks(text), notes), notes=notes)


def text_blocks(text: str) -> Iterator[Block]:
    """One block per non-blank line; lines end at \\n, \\r\\n or \\r only (a form feed, NEL
    or U+2028 inside a line is text)."""
    return (Block(line) for line in (line.strip() for line in _LINE_END.split(text)) if line)


def until(deadline: Deadline, blocks: Iterable[Block], notes: list[str]) -> list[Block]:
    """The blocks read before the deadline passed (a note says so if it did)."""
    read: list[Block] = []
    for block in blocks:
        if deadline.passed():
            notes.append(stopped_note(len(read)))
            break
        read.append(block)
    return read


# -- .pdf ----------------------------------------------------------------------------------
def read_pdf(data: bytes) -> Reading:
    import pypdfium2 as pdfium

    if not data[:1024].lstrip().startswith(b"%PDF-"):
        raise Unreadable(f"not a PDF ({_kind(data)})")
    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as error:
        if "password" in str(error).lower():
            raise Unreadable("encrypted PDF (needs a password)") from None
        raise Unreadable(f"damaged PDF ({_pdfium_reason(error)})") from None
    blocks: list[Block] = []
    notes: list[str] = []
    deadline = Deadline()
    try:
        title = _clean(document.get_metadata_dict(skip_empty=True).get("Title", ""))
        pages = len(document)
        no_text_layer, ocr_done = [], 0
        for number in range(1, min(pages, MAX_PDF_PAGES) + 1):
            if deadline.passed():
                notes.append(f"stopped at page {number} of {pages}: reading took over {MAX_READ_SECONDS:.0f} s")
                break
            page = document[number - 1]
            try:
                found = _page_blocks(page, number)
                if found is None:  # an image but no text: a scanned page
                    if not ocr_languages() or ocr_done >= MAX_OCR_PAGES:
                        no_text_layer.append(number)
                        continue
                    ocr_done += 1
                    found = _ocr_page(page, number, notes)
                blocks.extend(found)
            finally:
                page.close()
        if no_text_layer:
            pages_named = _pages(no_text_layer)
            why = OCR_MISSING if not ocr_languages() else f"OCR is limited to {MAX_OCR_PAGES} pages per PDF"
            notes.append(f"{pages_named} {'has' if len(no_text_layer) == 1 else 'have'} no text layer; {why}")
        if pages > MAX_PDF_PAGES:
            # Blank pages are said to be blank, not only that some were left unread.
            read = f"the first {MAX_PDF_PAGES} of {pages} pages read"
            notes.insert(0, f"only {read}" if blocks or no_text_layer else f"no text in {read}")
        elif not blocks and not no_text_layer:
            notes.insert(0, "no text")
    finally:
        document.close()
    return Reading(blocks, title or None, notes)


def _kind(data: bytes) -> str:
    kind = looks_like(data)
    return f"looks like {kind}" if kind else "looks like text"


def _pdfium_reason(error: Exception) -> str:
    match = re.search(r"PDFium: ([^)]+)", str(error))
    return match.group(1).rstrip(".").lower() if match else str(error).splitlines()[0]


def _pages(numbers: list[int]) -> str:
    if len(numbers) == 1:
        return f"page {numbers[0]}"
    shown = ", ".join(map(str, numbers[:10])) + (", …" if len(numbers) > 10 else "")
    return f"pages {shown}"


def _page_blocks(page, number: int) -> list[Block] | None:
    """The text blocks of one page; None for a page with images and no text (scanned)."""
    import pypdfium2.raw as raw

    textpage = page.get_textpage()
    try:
        count = textpage.count_chars()
        text = textpage.get_text_range() if count else ""
        if not text.strip():
            has_image = next(iter(page.get_objects(filter=(raw.FPDF_PAGEOBJ_IMAGE,), max_depth=3)), None)
            return None if has_image is not None else []
        lines = _lines_with_boxes(textpage, text, count)
    finally:
        textpage.close()
    return [Block(paragraph, number) for paragraph in _paragraphs_of_lines(lines)]


def _lines_with_boxes(textpage, text: str, count: int) -> list[tuple[str, float, float]]:
    """(text, top, bottom) per line of the page, in pdfium's reading order."""
    lines, start = [], 0
    aligned = len(text) == count  # one character per index (no characters outside the BMP)
    for line in re.split(r"\r\n|\n|\r", text):
        end = start + len(line)
        top, bottom = None, None
        if aligned:
            for index in range(start, end):
                if not line[index - start].isspace():
                    left, low, right, high = textpage.get_charbox(index, loose=True)
                    top, bottom = max(top or high, high), min(bottom or low, low)
        if line.strip():
            lines.append((line, top, bottom))
        start = end + 2 if text[end : end + 2] == "\r\n" else end + 1
    return lines


def _paragraphs_of_lines(lines: list[tuple[str, float | None, float | None]]) -> list[str]:
    paragraphs: list[list[str]] = []
    previous = None  # (top, bottom) of the line before
    for line, top, bottom in lines:
        if top is None:  # no boxes: a line is a paragraph
            paragraphs.append([line])
            previous = None
            continue
        if previous is None:
            paragraphs.append([])
        else:
            height = max(previous[0] - previous[1], top - bottom)
            gap = previous[1] - top
            if gap > 0.5 * height or gap < -height:
                paragraphs.append([])
        paragraphs[-1].append(line)
        previous = (top, bottom)
    return [text for text in map(join_lines, paragraphs) if text]


@lru_cache(maxsize=1)
def ocr_languages() -> tuple[str, ...]:
    """The corpus languages Tesseract has data for; empty when Tesseract is not installed."""
    if not shutil.which("tesseract"):
        return ()
    try:
        listed = subprocess.run(["tesseract", "--list-langs"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    installed = set(listed.split())
    return tuple(language for language in OCR_LANGUAGES if language in installed)


def _ocr_page(page, number: int, notes: list[str]) -> list[Block]:
    """The paragraphs Tesseract reads on an image of the page (blank lines separate them)."""
    width, height = page.get_size()
    scale = min(OCR_DPI / 72, (MAX_OCR_PIXELS / max(width * height, 1)) ** 0.5)
    bitmap = page.render(scale=scale, grayscale=True)
    try:
        image = bitmap.to_pil()
        png = BytesIO()
        image.save(png, "PNG")
    finally:
        bitmap.close()
    text = _tesseract(png.getvalue(), ocr_languages(), number, notes)
    # Read with every language, Tesseract spaces out Hangul syllables and misreads more:
    # so the page is read again with the language the first reading is in.
    alone = _OCR_LANGUAGE.get(detect_language(text or ""))
    if text and alone in ocr_languages() and len(ocr_languages()) > 1:
        text = _tesseract(png.getvalue(), (alone,), number, notes) or text
    paragraphs = (join_lines(part.splitlines()) for part in re.split(r"\n\s*\n", text or ""))
    return [Block(p, number, ocr=True) for p in paragraphs if p]


_OCR_LANGUAGE = {"en": "eng", "ko": "kor", "zh": "chi_sim", "id": "ind"}


def _tesseract(png: bytes, languages: tuple[str, ...], number: int, notes: list[str]) -> str | None:
    try:
        result = subprocess.run(
            ["tesseract", "stdin", "stdout", "-l", "+".join(languages), "--psm", "4"],
            input=png,
            capture_output=True,
            timeout=OCR_SECONDS_PER_PAGE,
        )
    except subprocess.TimeoutExpired:
        notes.append(f"page {number}: OCR took over {OCR_SECONDS_PER_PAGE} s; skipped")
        return None
    if result.returncode != 0:
        notes.append(f"page {number}: OCR failed ({result.stderr.decode(errors='replace').strip()[:120]})")
        return None
    return result.stdout.decode("utf-8", errors="replace")


# -- .docx ---------------------------------------------------------------------------------
def read_docx(data: bytes) -> Reading:
    import docx
    from docx.enum.style import WD_STYLE_TYPE

    if not data.startswith(b"PK\x03\x04"):
        raise Unreadable(f"not a Word file ({_kind(data)})")
    try:
        with zipfile.ZipFile(BytesIO(data)) as archive:
            unpacked = sum(member.file_size for member in archive.infolist())
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise Unreadable(f"damaged Word file ({error})") from None
    if "word/document.xml" not in names:
        raise Unreadable("a zip archive, not a Word file (no word/document.xml)")
    if unpacked > MAX_DOCX_UNPACKED_BYTES:
        raise Unreadable(
            f"unpacks to {unpacked / 2**20:.0f} MB, more than the {MAX_DOCX_UNPACKED_BYTES // 2**20} MB "
            f"allowed (a zip bomb?)"
        )
    deadline = Deadline()
    try:
        document = docx.Document(BytesIO(data))
        # Style names looked up once (python-docx looks a paragraph's style up among all styles).
        style_names = {style.style_id: style.name or "" for style in document.styles}
        default = document.styles.default(WD_STYLE_TYPE.PARAGRAPH)
    except Exception as error:  # python-docx raises many kinds (KeyError, lxml errors, ValueError) for damage
        raise Unreadable(f"damaged Word file ({type(error).__name__}: {str(error)[:100]})") from None
    default_name = (default.name if default is not None else "") or ""
    body = document.element.body
    blocks: list[Block] = []
    title, notes = None, []
    # The body's XML read directly: python-docx's objects compile an XPath query per paragraph
    # and per run, and find a merged cell's row among all rows of its table.
    for element in body.iterchildren(_W + "p", _W + "tbl") if body is not None else ():
        if deadline.passed():
            notes.append(stopped_note(len(blocks)))
            break
        if element.tag == _W + "tbl":
            blocks.extend(Block(text) for text in _cells(element))
            continue
        text = _clean(_paragraph_text(element))
        if not text:
            continue
        blocks.append(Block(text))
        if title is None:
            style = element.find(f"{_W}pPr/{_W}pStyle")
            style_id = style.get(_W + "val") if style is not None else None
            # A style the file does not define is known by its id ("Heading1").
            name = style_names.get(style_id, style_id) if style_id else default_name
            if name == "Title" or name.startswith("Heading"):
                title = text
    return Reading(blocks, title, notes)


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
# What a run's elements other than text read as; a break of any kind (line, page, column)
# parts the words on either side.
_RUN_TEXT = {_W + "tab": "\t", _W + "ptab": "\t", _W + "br": "\n", _W + "cr": "\n", _W + "noBreakHyphen": "-"}


def _paragraph_text(paragraph) -> str:
    """The text of a w:p: its runs' and its hyperlinks' runs' text, tabs and line breaks."""
    parts = []
    for child in paragraph.iterchildren(_W + "r", _W + "hyperlink"):
        for run in child.iterchildren(_W + "r") if child.tag == _W + "hyperlink" else (child,):
            for item in run.iterchildren(_W + "t", *_RUN_TEXT):
                parts.append(item.text or "" if item.tag == _W + "t" else _RUN_TEXT[item.tag])
    return "".join(parts)


def _cells(table) -> Iterator[str]:
    """Each cell's text once, row by row: a cell merged across columns is one element, and the
    rows a vertically merged cell spans hold empty continuation cells."""
    for row in table.iterchildren(_W + "tr"):
        for cell in row.iterchildren(_W + "tc"):
            text = _clean("\n".join(_paragraph_text(p) for p in cell.iterchildren(_W + "p")))
            if text:
                yield text


# -- .html, .htm ---------------------------------------------------------------------------
# Elements that are not the page's content.
_DROPPED = "script, style, noscript, template, nav, [role=navigation], svg, iframe, object"
_BLOCKS = frozenset(
    [
        "address",
        "article",
        "aside",
        "blockquote",
        "body",
        "caption",
        "dd",
        "details",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "li",
        "main",
        "ol",
        "p",
        "pre",
        "section",
        "summary",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "ul",
    ]
)
_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_-]+)""", re.IGNORECASE)
# For flattening deep nesting: a tag, as far as its depth is concerned. Searched only up to
# the last ">", so that a "<x" never scans to the end of the page for one.
_TAG = re.compile(r"<(/?)([A-Za-z][^\s/>]*)[^>]*>")
# Tags that never hold others open (void), that the parser closes by itself when a sibling
# starts (optional end tags), and whose content is text up to their end tag (raw text).
_VOID = frozenset(
    [
        "area",
        "base",
        "basefont",
        "bgsound",
        "br",
        "col",
        "embed",
        "frame",
        "hr",
        "img",
        "input",
        "keygen",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
    ]
)
_OPTIONAL_END = frozenset(
    [
        "body",
        "caption",
        "colgroup",
        "dd",
        "dt",
        "head",
        "html",
        "li",
        "optgroup",
        "option",
        "p",
        "rb",
        "rp",
        "rt",
        "rtc",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
    ]
)
# (noscript is not among them: with scripts off, its content is parsed as elements.)
_RAW_TEXT_END = {
    name: re.compile(f"</{name}", re.IGNORECASE)
    for name in ("iframe", "noembed", "noframes", "plaintext", "script", "style", "textarea", "title", "xmp")
}
# Inside these, the tags above are elements like any other (and a <div> leaves them again).
_FOREIGN = frozenset(["svg", "math"])


def read_html(data: bytes) -> Reading:
    from selectolax.lexbor import LexborHTMLParser

    kind = looks_like(data)
    if kind:
        raise Unreadable("binary content, not HTML" + (f" (looks like {kind})" if kind != "binary" else ""))
    deadline = Deadline()
    text, notes = _decode_html(data)
    text, flattened = flatten_html(text)
    if flattened:
        notes.append(f"elements nested deeper than {MAX_HTML_DEPTH} levels read as plain paragraphs")
    tree = LexborHTMLParser(text)
    title_node = tree.css_first("title")
    for node in tree.css(_DROPPED):
        node.decompose()
    root = tree.body or tree.root
    blocks = until(deadline, map(Block, _html_paragraphs(root)), notes) if root is not None else []
    heading = tree.css_first("h1")
    title = _clean(title_node.text()) if title_node is not None else None
    title = title or (_clean(heading.text()) if heading is not None else None)
    return Reading(blocks, title or None, notes)


def flatten_html(text: str) -> tuple[str, bool]:
    """The page with its elements nested deeper than MAX_HTML_DEPTH taken out of the nesting,
    and whether any were. An HTML parser checks the open elements at each tag, so a page of
    50,000 nested <div>s takes it minutes; flattened, its work per tag is bounded by the depth
    kept. Below the limit the page is returned as it is. Deeper, a block element's tags become
    <br> (its text stays a paragraph of its own) and other tags are dropped (their text stays).
    The depth is counted from the tags alone, conservatively: every start tag of an element
    that stays open until its end tag counts, closed or not."""
    if text.count("<") <= MAX_HTML_DEPTH:
        return text, False
    end = text.rfind(">") + 1
    pieces: list[str] = []
    copied = depth = 0  # text[:copied] is in pieces
    dropped: dict[str, int] = {}  # name -> start tags taken out and not yet closed
    foreign = position = 0  # foreign: <svg> and <math> elements open
    while match := _TAG.search(text, position, end):
        position = match.end()
        closing, name = match.group(1), match.group(2).lower()
        if name in _FOREIGN and not match.group(0).endswith("/>"):
            foreign = max(foreign + (-1 if closing else 1), 0)
        elif name in _RAW_TEXT_END and not foreign:  # its content is text up to its end tag
            if not closing:
                close = _RAW_TEXT_END[name].search(text, position)
                position = close.start() if close else len(text)
            continue
        if name in _VOID or name in _OPTIONAL_END or match.group(0).endswith("/>"):
            continue
        if closing:
            out = depth > MAX_HTML_DEPTH and dropped.get(name, 0) > 0
            if out:
                dropped[name] -= 1
            depth = max(depth - 1, 0)
        else:
            depth += 1
            out = depth > MAX_HTML_DEPTH
            if out:
                dropped[name] = dropped.get(name, 0) + 1
        if out:
            pieces += (text[copied : match.start()], "<br>" if name in _BLOCKS else "")
            copied = match.end()
    if not pieces:
        return text, False
    pieces.append(text[copied:])
    return "".join(pieces), True


def _decode_html(data: bytes) -> tuple[str, list[str]]:
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError:
        pass
    declared = _CHARSET.search(data[:4096])
    if declared:
        try:
            return data.decode(declared.group(1).decode("ascii")), []
        except (LookupError, UnicodeDecodeError):
            pass
    return data.decode("utf-8", errors="replace"), ["not valid UTF-8; undecodable bytes replaced"]


def _html_paragraphs(root) -> Iterator[str]:
    """Block elements' text in document order, walked without recursion (deep pages)."""
    current: list[str] = []

    def flush() -> str | None:
        text = _clean("".join(current))
        current.clear()
        return text or None

    stack: list[tuple[object, bool]] = [(root, False)]  # (node, in <pre>)
    while stack:
        node, in_pre = stack.pop()
        if node is None:  # the end of a block
            if text := flush():
                yield text
            continue
        tag = node.tag
        if tag == "-text":
            value = node.text_content or ""
            if in_pre and "\n" in value:
                *whole, rest = value.split("\n")
                for line in whole:
                    current.append(line)
                    if text := flush():
                        yield text
                current.append(rest)
            else:
                current.append(value)
            continue
        if tag == "br" or tag in _BLOCKS:
            if text := flush():
                yield text
            if tag == "br":
                continue
            stack.append((None, in_pre))
        children = []
        child = node.child
        while child is not None:
            children.append(child)
            child = child.next
        stack.extend((c, in_pre or tag == "pre") for c in reversed(children))
    if text := flush():
        yield text


READERS: dict[str, Reader] = {
    ".txt": Reader(read_text, MAX_TEXT_BYTES, _text_version),
    ".md": Reader(read_text, MAX_TEXT_BYTES, _text_version),
    ".pdf": Reader(read_pdf, MAX_PACKED_BYTES, _pdf_version),
    ".docx": Reader(read_docx, MAX_PACKED_BYTES, lambda: "docx 1"),
    ".html": Reader(read_html, MAX_TEXT_BYTES, lambda: "html 1"),
    ".htm": Reader(read_html, MAX_TEXT_BYTES, lambda: "html 1"),
}
