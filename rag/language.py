"""Which of the supported languages a text is written in, from its script and common words.

A heuristic is enough here: the four languages of the corpus use three scripts, and
Indonesian and English are told apart by their most frequent words. It is instant,
deterministic and needs no model.
"""

from __future__ import annotations

import re

from .text import HAN, HANGUL, KANA, without_quoted

LANGUAGE_NAMES = {"en": "English", "ko": "Korean", "zh": "Chinese", "id": "Indonesian", "ja": "Japanese"}

_HANGUL = re.compile(f"[{HANGUL}]")
_KANA = re.compile(f"[{KANA}]")
_HAN = re.compile(f"[{HAN}]")
_LATIN_WORD = re.compile(r"[A-Za-z]+")

_INDONESIAN = frozenset(
    [
        "yang",
        "dan",
        "di",
        "ke",
        "dari",
        "untuk",
        "dengan",
        "ini",
        "itu",
        "pada",
        "adalah",
        "dalam",
        "tidak",
        "akan",
        "apa",
        "siapa",
        "berapa",
        "kapan",
        "mengapa",
        "bagaimana",
        "bisa",
        "oleh",
        "atau",
        "juga",
        "telah",
        "sudah",
        "karena",
        "sebagai",
        "menurut",
        "tentang",
        "para",
        "setelah",
        "lebih",
        "mereka",
        "kami",
        "kita",
        "saya",
        "perusahaan",
        "selama",
        "berapakah",
        "apakah",
        "dimana",
        "tahun",
        "bulan",
        "minggu",
        "hari",
        "orang",
        "menjadi",
        "bahwa",
        "ada",
        "seorang",
        "banyak",
    ]
)
_ENGLISH = frozenset(
    [
        "the",
        "and",
        "of",
        "to",
        "in",
        "is",
        "are",
        "was",
        "were",
        "what",
        "who",
        "when",
        "why",
        "how",
        "which",
        "for",
        "with",
        "on",
        "at",
        "by",
        "from",
        "that",
        "this",
        "it",
        "as",
        "be",
        "has",
        "have",
        "had",
        "did",
        "does",
        "do",
        "many",
        "much",
        "after",
        "before",
        "about",
        "according",
        "his",
        "her",
        "their",
        "company",
        "year",
    ]
)


def detect_language(text: str) -> str:
    """ISO 639-1 code: 'ko', 'ja', 'zh', 'id' or 'en' (the fallback, also for emoji or digits)."""
    hangul = len(_HANGUL.findall(text))
    kana = len(_KANA.findall(text))
    han = len(_HAN.findall(text))
    words = [w.lower() for w in _LATIN_WORD.findall(text)]
    # CJK characters carry about as much as a Latin word each; compare script mass.
    if hangul and hangul >= han and hangul * 2 >= len(words):
        return "ko"
    if kana and (kana + han) * 2 >= len(words):
        return "ja"
    if han and han * 2 >= len(words):
        return "zh"
    indonesian = sum(w in _INDONESIAN for w in words)
    english = sum(w in _ENGLISH for w in words)
    return "id" if indonesian > english else "en"


def question_language(question: str) -> str:
    """The language a question is asked in: that of its own words, not of a title it quotes."""
    return detect_language(without_quoted(question))


def language_name(code: str) -> str:
    return LANGUAGE_NAMES.get(code, code)


# How questions name a language of the documents ("according to the Korean article",
# "인도네시아어 기사에 따르면", "韩文总结说", "menurut artikel berbahasa Inggris").
_NAMED = {
    "id": ("indonesian", "indonesia", "인도네시아", "印尼", "印度尼西亚"),
    "ko": ("korean", "korea", "한국어", "한글", "韩文", "韩语", "韩国", "韓國"),
    "zh": ("chinese", "mandarin", "tionghoa", "중국어", "중문", "中文", "汉语", "華語"),
    "en": ("english", "inggris", "영어", "영문", "英文", "英语"),
    "ja": ("japanese", "jepang", "일본어", "日文", "日语"),
}


def named_language(question: str) -> str | None:
    """The one document language a question names as its source, if it names exactly one."""
    text = question.casefold()
    named = [code for code, names in _NAMED.items() if any(name in text for name in names)]
    return named[0] if len(named) == 1 else None
