"""Follow-up questions: "what feature did she like?" becomes "What feature did Mia like?".

Retrieval sees one question at a time, so a follow-up that leans on the conversation is
first made standalone. The default LLM is small (0.5B): asked to rewrite a whole question
it mostly echoes the previous question or returns the follow-up unchanged. Asked only *what
the follow-up is about*, it names the right person or thing for most of them (measurements:
docs/evaluation.md). So the work is split:

1. only questions that look like follow-ups (short, with a pronoun or a connective, or
   very short) are touched at all, so standalone questions are never mangled;
2. the LLM names the referent ("Mia"), which must be words of the previous turn;
3. the referent replaces the pronoun by rule ("she" -> "Mia", "atasannya" -> "atasan
   Brendan Gregg", "他" -> "Mark Chen"), or, when there is no pronoun to replace, is
   appended in parentheses ("연구자는요? (Codex)").

Anything that looks wrong falls back to the question as typed. Known weakness: a person
pronoun after an answer that names a company ("he" after "Segment") may get the company.
`Assistant.standalone_question` runs this with the Assistant's LLM, one generation at a time.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .citations import strip_markers
from .language import question_language
from .text import CJK_CHAR

# -- prompt text, as data ------------------------------------------------------------------
SYSTEM = (
    "Say who or what the follow-up question is about, using the words of the previous question "
    "or answer. Reply with that name or phrase only."
)
USER = (
    "Previous question: {question}\nPrevious answer: {answer}\nFollow-up question: {follow_up}\nThe follow-up is about:"
)
# Worked examples, given as earlier turns: (previous question, previous answer, follow-up, referent).
# Invented names, so that no document's content leaks into the prompt.
EXAMPLES = [
    ("Who is the chief engineer of Nimbus Labs?", "Lena Park.", "What did she say about the launch?", "Lena Park"),
    ("How many employees did Nimbus Labs have in 2022?", "More than 3,000.", "and in 2021?", "Nimbus Labs employees"),
    ("필자는 언제 한빛전자에 입사했나요?", "2019년 3월에 입사했습니다.", "그럼 언제 퇴사했나요?", "필자"),
    ("谁创立了星河科技?", "王立。", "他在那里工作了多久?", "王立"),
    ("Apa nama perusahaan baru Rina Wulandari?", "Awan Biru.", "Berapa dana yang dikumpulkannya?", "Awan Biru"),
]
ANSWER_CHARS = 200  # of the previous answer, shown to the model
MAX_TOKENS = 24
MAX_REFERENT_CHARS = 60

# -- when to try -------------------------------------------------------------------------
_FOLLOW_UP_WORDS = {
    # English
    "it",
    "its",
    "they",
    "them",
    "their",
    "he",
    "him",
    "his",
    "she",
    "her",
    "that",
    "this",
    "those",
    "these",
    "there",
    "then",
    "and",
    "also",
    "what about",
    "how about",
    "same",
    "else",
    "other",
    # Indonesian
    "dia",
    "ia",
    "beliau",
    "mereka",
    "itu",
    "tersebut",
    "dan",
    "lalu",
    "kalau",
    "terus",
    "juga",
    "bagaimana dengan",
    "sana",
    "situ",
    "lagi",
}
_FOLLOW_UP_CJK = (
    # Korean
    "그는",
    "그녀",
    "그들",
    "그것",
    "그게",
    "그건",
    "이것",
    "이건",
    "저것",
    "거기",
    "그럼",
    "그러면",
    "그리고",
    "그때",
    "그곳",
    "그 ",
    "또 ",
    "또한",
    "이 사람",
    "그 사람",
    "는요",
    "은요",
    # Chinese
    "他",
    "她",
    "它",
    "这",
    "那",
    "其",
    "该",
    "还有",
    "呢",
    "此",
    "上面",
)
_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*|\d+(?:[.,:]\d+)*", re.UNICODE)
_CJK = CJK_CHAR
# Indonesian words ending in -nya that are not "X of him/her/it".
_NOT_POSSESSIVE_NYA = {
    "hanya",
    "punya",
    "tanya",
    "bertanya",
    "ditanya",
    "menanya",
    "biasanya",
    "akhirnya",
    "sebelumnya",
    "selanjutnya",
    "sebenarnya",
    "seharusnya",
    "sesungguhnya",
    "lainnya",
    "semuanya",
    "khususnya",
    "umumnya",
    "misalnya",
    "sayangnya",
    "rupanya",
    "agaknya",
    "bahwasanya",
    "nyanya",
    "kayanya",
}


_HANGUL_WORD_START = re.compile(r"[그이저거또]")


def _latin_words(text: str) -> list[str]:
    return _WORD.findall(_CJK.sub(" ", text))


def _possessive_nya(word: str) -> bool:
    lower = word.lower()
    return lower.endswith("nya") and len(lower) > 5 and lower not in _NOT_POSSESSIVE_NYA


def _has_marker(question: str, marker: str) -> bool:
    """A Korean pronoun starts a word ("그는", not the end of the name "그레그는"); Korean endings
    ("는요") and Chinese markers (no spaces between words) may stand anywhere."""
    if _HANGUL_WORD_START.match(marker):
        return re.search(r"(?:^|[^\uac00-\ud7a3])" + re.escape(marker), question + " ") is not None
    return marker in question + " "


def looks_like_follow_up(question: str) -> bool:
    """Whether a question probably leans on the conversation: short, and with a pronoun or connective."""
    words, cjk = _latin_words(question), len(_CJK.findall(question))
    if len(words) + cjk == 0:
        return False
    short = len(words) <= 10 and cjk <= 16
    very_short = len(words) + (cjk + 1) // 2 <= 3
    lower = " " + " ".join(w.lower() for w in words) + " "
    marker = (
        any(f" {w} " in lower for w in _FOLLOW_UP_WORDS)
        or any(_possessive_nya(w) for w in words)
        or any(_has_marker(question, m) for m in _FOLLOW_UP_CJK)
    )
    return short and (marker or very_short)


# -- the referent and where it goes ----------------------------------------------------------
_HANGUL_BEFORE = r"(?<![\uac00-\ud7a3])"
# Possessives ("his", "-nya") often point at a name in the same question: replaced only without one.
_POSSESSIVE = {"en": re.compile(r"\b(?:his|its|their)\b", re.I), "id": re.compile(r"\b(\w{3,}?)nya\b", re.I)}
_SUBSTITUTIONS = {
    "en": [(re.compile(r"\b(?:he|she|it|they|him|her|them)\b", re.I), "{ref}")],
    "id": [(re.compile(r"\b(?:dia|ia|beliau|mereka)\b", re.I), "{ref}")],
    "ko": [
        (
            re.compile(_HANGUL_BEFORE + r"(?:그녀|그들|그것|그곳|그)(은|는|이|가|을|를|의|에게|에서|와|과|도)"),
            r"{ref}\1",
        ),
        (re.compile(_HANGUL_BEFORE + r"(?:그|이|저) (?:회사|사람|제품|팀|기사|글)"), "{ref}"),
    ],
    "zh": [(re.compile(r"(?:他们|她们|它们|他|她|它|该公司|这家公司|那家公司|此人)"), "{ref}")],
}


def names_something(question: str) -> bool:
    """Whether the question names its own subject: a capitalised word after the first, or Latin in CJK."""
    words = _latin_words(question)
    if _CJK.search(question):
        return any(len(w) >= 2 for w in words)
    return any(w[:1].isupper() for w in words[1:]) or any(
        any(c.isdigit() or c == "-" for c in w) or any(c.isupper() for c in w[1:]) for w in words
    )


def _fill(question: str, language: str, referent: str) -> str | None:
    """The question with its pronouns replaced by the referent, or the referent appended; None to keep it."""
    result = question
    rules = list(_SUBSTITUTIONS.get(language, []))
    named = names_something(question)
    if language in _POSSESSIVE and not named:
        rules.insert(0, (_POSSESSIVE[language], "{ref}'s" if language == "en" else r"\1 {ref}"))
    for pattern, replacement in rules:
        template = replacement.replace("{ref}", referent.replace("\\", "\\\\"))

        def substitute(match: re.Match) -> str:
            if language == "id" and match.group(0).lower().endswith("nya") and not _possessive_nya(match.group(0)):
                return match.group(0)
            return match.expand(template)  # noqa: B023 -- pattern.sub calls it at once

        result = pattern.sub(substitute, result)
    if result != question:
        return result[:1].upper() + result[1:] if language in ("en", "id") else result
    return None if named else f"{question} ({referent})"


def _prompt(question: str, answer: str, follow_up: str) -> str:
    answer = " ".join(strip_markers(answer or "").split())
    if len(answer) > ANSWER_CHARS:
        answer = answer[: ANSWER_CHARS - 1] + "…"
    return USER.format(question=" ".join(question.split()), answer=answer or "-", follow_up=follow_up)


def messages(history: Sequence[tuple[str, str]], question: str) -> list[dict[str, str]]:
    """Chat messages asking what the follow-up is about; `history` is (question, answer), oldest first."""
    result = [{"role": "system", "content": SYSTEM}]
    for previous, answer, follow_up, referent in EXAMPLES:
        result.append({"role": "user", "content": _prompt(previous, answer, follow_up)})
        result.append({"role": "assistant", "content": referent})
    previous, answer = history[-1]
    result.append({"role": "user", "content": _prompt(previous, answer, question)})
    return result


def _clean(raw: str) -> str:
    text = raw.strip().splitlines()[0].strip() if raw.strip() else ""
    return text.strip(" \"'“”‘’「」『』.。,，:：").strip()


def check_referent(referent: str, question: str, history: Sequence[tuple[str, str]]) -> str | None:
    """Why a referent cannot be used, or None if it can."""
    if not referent:
        return "empty"
    if len(referent) > MAX_REFERENT_CHARS or "NOT FOUND" in referent.upper() or referent[0].isdigit():
        return "not a name"  # a number ("14 bulan") is the previous answer, not what the question is about
    previous, answer = history[-1]
    if referent.casefold() not in f"{previous} {answer}".casefold():
        return "not from the conversation"
    if referent.casefold() in question.casefold():
        return "already in the question"
    return None


@dataclass(frozen=True)
class Rewrite:
    question: str  # what the user typed
    standalone: str  # what to ask the assistant: the follow-up made standalone, or the question itself
    reason: str  # "rewritten", "no history", "not a follow-up" or "kept: <why>"

    @property
    def rewritten(self) -> bool:
        return self.standalone != self.question


def standalone_question(
    llm, history: Sequence[tuple[str, str]], question: str, max_tokens: int = MAX_TOKENS
) -> Rewrite:
    """The question to retrieve and answer with: the follow-up made standalone, or itself.

    `llm` has `stream(messages, max_tokens, temperature)` yielding text (the assistant's
    LLM; called once, only for questions that look like follow-ups); `history` is the
    earlier (question, answer) pairs, oldest first.
    """
    question = " ".join(question.split())
    history = [(q, a or "") for q, a in history if q and q.strip()]
    if not history:
        return Rewrite(question, question, "no history")
    if not looks_like_follow_up(question):
        return Rewrite(question, question, "not a follow-up")
    referent = _clean("".join(llm.stream(messages(history, question), max_tokens, 0.0)))
    problem = check_referent(referent, question, history)
    if problem:
        return Rewrite(question, question, f"kept: referent {referent!r} {problem}")
    standalone = _fill(question, question_language(question), referent)
    if standalone is None:
        return Rewrite(question, question, "kept: the question names its subject")
    return Rewrite(question, standalone, "rewritten")
