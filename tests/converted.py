"""The seeds converted by real tools into the formats people keep: PDF (Chromium's
print-to-PDF), DOCX (python-docx) and HTML, plus scanned pages (text drawn into an image
with Pillow, wrapped in an image-only PDF). Used by the session fixtures in conftest.py."""

from __future__ import annotations

import html
from pathlib import Path

CJK_FONT = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")

# Navigation, scripts and styles a saved web page carries: the HTML reader must drop them.
_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>body {{ font-family: "Noto Sans CJK KR", "Noto Sans", sans-serif; font-size: 11pt; word-break: keep-all; }}</style>
<script>var tracking = "script text must not be indexed";</script></head>
<body><nav><a href="/">Home</a> <a href="/news">News menu must not be indexed</a></nav>
<main><h1>{title}</h1>
{body}
</main><footer><nav>Footer navigation must not be indexed</nav></footer></body></html>
"""


def seed_lines(path: Path) -> list[str]:
    """The seed's paragraphs as the .txt reader makes them: non-blank lines, stripped."""
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def to_html(lines: list[str]) -> str:
    """The first line as the page's heading, every other line a <p>."""
    body = "\n".join(f"<p>{html.escape(line)}</p>" for line in lines[1:])
    return _PAGE.format(title=html.escape(lines[0]), body=body)


def to_docx(lines: list[str], target: Path) -> None:
    """A Word file: the first line as its title heading, the others as paragraphs, and the
    last three lines in a one-row table (the reader takes table cells as paragraphs)."""
    import docx

    document = docx.Document()
    document.add_heading(lines[0], level=1)
    body, cells = lines[1:-3], lines[-3:]
    for line in body:
        document.add_paragraph(line)
    table = document.add_table(rows=1, cols=len(cells))
    for cell, line in zip(table.rows[0].cells, cells):
        cell.text = line
    document.save(str(target))


def html_to_pdf(pages: dict[Path, str], chromium: Path) -> None:
    """Print each HTML text to its PDF path with headless Chromium (A4, 2 cm margins). In a
    thread of its own: Playwright's sync API refuses to start in a thread where another sync
    session (the browser tests', when they are the first to need the PDFs) runs its loop."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        pool.submit(_print_pdfs, pages, chromium).result()


def _print_pdfs(pages: dict[Path, str], chromium: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page()
            for target, text in pages.items():
                page.set_content(text, wait_until="load")
                page.pdf(
                    path=str(target), format="A4", margin={"top": "2cm", "bottom": "2cm", "left": "2cm", "right": "2cm"}
                )
        finally:
            browser.close()


def scanned_pdf(lines: list[str], target: Path, width: int = 1240, size: int = 34) -> None:
    """One page image (150 dpi A4 width) with the lines drawn in Noto Sans CJK, wrapped by
    width, saved as an image-only PDF: no text layer, as a scanner makes."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(str(CJK_FONT), size)
    margin, drawn = 100, []
    for line in lines:
        row = ""
        for token in _wrap_units(line):
            if row and font.getlength(row + token) > width - 2 * margin:
                drawn.append(row.rstrip())
                row = token.lstrip()
            else:
                row += token
        drawn.append(row)
        drawn.append("")  # a blank line between paragraphs
    image = Image.new("L", (width, int(width * 1.414)), 255)
    draw = ImageDraw.Draw(image)
    for n, row in enumerate(drawn):
        draw.text((margin, margin + n * int(size * 1.6)), row, font=font, fill=0)
    image.save(str(target), "PDF", resolution=150)


def _wrap_units(line: str) -> list[str]:
    """Words with their leading space for spaced scripts; single characters for CJK."""
    units: list[str] = []
    for word in line.split(" "):
        if any("\u3000" <= ch <= "\u9fff" for ch in word):
            units.extend(([" "] if units else []) + list(word))
        else:
            units.append((" " if units else "") + word)
    return units
