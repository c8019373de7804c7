"""What the CLI prints from documents, file names and answers cannot drive the terminal."""

import json

import pytest

from rag.terminal import json_line, printable

HOSTILE = [
    "\x1b]52;c;cHduZWQ=\x07",  # OSC 52: set the clipboard
    "\x1b[2K\r",  # CSI: erase the line, back to its start
    "\x1b]0;title\x1b\\",  # OSC 0: window title, ST-terminated
    "\x9b2K",  # C1 CSI
    "\x9d0;title\x9c",  # C1 OSC .. ST
    "one\ntwo",  # a fake extra output line
    "a\u2028b\u2029c",  # line and paragraph separators
    "evil\u202etxt.exe",  # a bidi override
    "\x00\x07\x7f",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_control_characters_are_shown_as_escapes(text):
    shown = printable(text)
    assert shown.isprintable(), repr(shown)
    assert not any(c in shown for c in "\x1b\x9b\x9c\x9d\n\r\u2028\u202e")


def test_ordinary_text_is_unchanged_and_escapes_are_readable():
    for text in [
        "OpenAI는 2015년에 설립되었다.",
        "总裁只回答了两个问题",
        "Calvin French-Owen ikut mendirikan Segment.",
        "emoji 🤖 and ZWJ 👩\u200d💻",
    ]:
        assert printable(text) == text
    assert printable("a\x1b[2Kb\nc\u202e") == "a\\x1b[2Kb\\nc\\u202e"
    assert printable("line\nbreak\x1b", keep_newlines=True) == "line\nbreak\\x1b"


@pytest.mark.parametrize("text", HOSTILE)
def test_json_output_is_valid_and_terminal_safe(text):
    line = json_line({"file": text, "text": f"한국어 {text}"})
    assert "\n" not in line and line.isprintable(), repr(line)
    assert json.loads(line) == {"file": text, "text": f"한국어 {text}"}
    assert "한국어" in line  # non-ASCII stays readable
