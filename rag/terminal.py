"""Text from documents, file names and answers as it may reach a terminal.

A document or a file name can hold escape sequences (ESC ] 52 sets the clipboard, ESC [ 2K
erases a line, ESC ] 0 sets the window title), a newline that fakes an extra output line,
or bidirectional overrides that reorder what is shown. Every value the CLI prints goes
through `printable`, which shows such characters as visible escapes (`\\x1b`, `\\n`, `\\u202e`).
"""

from __future__ import annotations

import unicodedata

# Bidirectional embeddings, overrides and isolates: they reorder the text after them.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _unsafe(character: str) -> bool:
    return unicodedata.category(character) in ("Cc", "Zl", "Zp") or character in _BIDI_CONTROLS


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """`text` with control characters (C0, DEL, C1), line and paragraph separators and bidi
    controls shown as escapes; with `keep_newlines`, "\\n" stays a line break (an answer's)."""
    if not any(_unsafe(c) for c in text):
        return text
    return "".join(
        c
        if not _unsafe(c) or (keep_newlines and c == "\n")
        else "\\n"
        if c == "\n"
        else f"\\x{ord(c):02x}"
        if ord(c) < 0x100
        else f"\\u{ord(c):04x}"
        for c in text
    )


def json_line(data: object) -> str:
    """One line of JSON, readable (non-ASCII kept) and as safe for a terminal as `printable`:
    json escapes C0 controls itself; C1 controls, separators and bidi controls are escaped
    here as \\uXXXX, which is still valid JSON (they only ever occur inside strings)."""
    import json

    text = json.dumps(data, ensure_ascii=False)
    return "".join(f"\\u{ord(c):04x}" if _unsafe(c) else c for c in text) if any(map(_unsafe, text)) else text
