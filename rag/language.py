"""Which of the supported languages a text is written in: Korean, Japanese and Chinese by their
scripts, English and Indonesian (both in Latin script) by lingua's models of the two."""

from __future__ import annotations

import functools
import re

from .text import HAN, HANGUL, KANA, QUOTED, without_matches

LANGUAGE_NAMES = {"en": "English", "ko": "Korean", "zh": "Chinese", "id": "Indonesian", "ja": "Japanese"}

_HANGUL = re.compile(f"[{HANGUL}]")
_KANA = re.compile(f"[{KANA}]")
_HAN = re.compile(f"[{HAN}]")
_LATIN_WORD = re.compile(r"[A-Za-z]+")


# Latin-script text is English or Indonesian (the corpus languages written in it), told apart
# by lingua's statistical models of the two: reliable on a question as short as "Siapakah
# Gubernur Sumatera Barat", where counting common words is not. Loaded on first use.
@functools.cache
def _latin_detector():
    from lingua import Language, LanguageDetectorBuilder

    return LanguageDetectorBuilder.from_languages(Language.ENGLISH, Language.INDONESIAN).build()


# A capitalised word after the first is most often a name, and a name is in no language:
# "founded in Bandung by Dewi Kartika" is English. Left out when enough other words remain.
_NAME = re.compile(r"(?<=[\s(\"'“‘])[A-Z][\w'’-]*")


def _latin_language(text: str) -> str:
    from lingua import Language

    own = _NAME.sub(" ", text)
    if len(re.findall(r"[A-Za-z]{2,}", own)) < 2:
        own = text
    return "id" if _latin_detector().detect_language_of(own) == Language.INDONESIAN else "en"


def detect_language(text: str) -> str:
    """ISO 639-1 code: 'ko', 'ja', 'zh', 'id' or 'en' (the fallback, also for emoji or digits)."""
    hangul = len(_HANGUL.findall(text))
    kana = len(_KANA.findall(text))
    han = len(_HAN.findall(text))
    words = _LATIN_WORD.findall(text)
    # CJK characters carry about as much as a Latin word each; compare script mass.
    if hangul and hangul >= han and hangul * 2 >= len(words):
        return "ko"
    if kana and (kana + han) * 2 >= len(words):
        return "ja"
    if han and han * 2 >= len(words):
        return "zh"
    return _latin_language(text) if words else "en"


# What a question quotes, and a bracketed aside glossing a name in another script: "Svealand (斯韦阿兰)".
_ASIDES = re.compile(f"{QUOTED.pattern}|\\([^()]*\\)|（[^（）]*）")


def question_language(question: str) -> str:
    """The language a question is asked in: that of its own words, not of a title it quotes
    or a name it glosses in brackets."""
    return detect_language(without_matches(_ASIDES, question))


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
