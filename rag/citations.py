"""From a generated answer to a checked citation: the paragraph and the sentence it rests on.

An answer is shown as fact only when its cited paragraph supports it: every number and
Latin-script name the answer adds to the question is in the paragraph, the sentence it
rests on is a statement (not an instruction to an assistant), and the answer says more
than the question did. Support is then lexical (the answer's words are the paragraph's)
or, across languages, by meaning (embedding similarity of answer and sentence). Every
rule is about what the answer does with a passage; passages themselves are never edited.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

# A citation marker group: [1], [1, 3], [1，2] (the only place this pattern is written).
MARKER_GROUP = re.compile(r"\[\s*\d+(?:\s*[,，、;]\s*\d+)*\s*\]")
_DIGITS = re.compile(r"\d+")
# A sentence ends at . ! ? (ASCII followed by space or end) or a CJK full stop, or a line break.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])|\n+")


class Source(Protocol):
    """What a marker [n] points to: one paragraph (see rag.passages.Passage)."""

    file: str
    paragraph: int
    text: str


class Located(Protocol):
    """A paragraph as rag.documents.Paragraph has it."""

    file: str
    number: int
    text: str
    page: int | None
    ocr: bool


def place(paragraph: int, page: int | None = None) -> str:
    """Where a paragraph stands in its file: `¶N`, or `p.PAGE ¶N` for a paged format."""
    return f"p.{page} ¶{paragraph}" if page is not None else f"¶{paragraph}"


def location(file: str, paragraph: int, page: int | None = None, ocr: bool = False) -> str:
    """How a paragraph is cited: `file ¶N`, or `file p.PAGE ¶N` for a paged format."""
    where = f"{file} {place(paragraph, page)}"
    return where + " (OCR)" if ocr else where


@dataclass(frozen=True)
class Citation:
    n: int  # the marker number in the answer text
    file: str
    paragraph: int
    text: str  # the paragraph's exact text
    quote: str  # the sentence of the paragraph the answer rests on, verbatim
    page: int | None = None  # from 1 for PDFs, None for formats without pages
    ocr: bool = False  # the paragraph was read by OCR from a scanned page

    @property
    def location(self) -> str:
        return location(self.file, self.paragraph, self.page, self.ocr)

    def to_json(self) -> dict:
        return asdict(self)


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def markers(text: str) -> list[int]:
    """Marker numbers in order of first appearance: "[1] … [2, 3]" gives [1, 2, 3]."""
    seen: list[int] = []
    for group in MARKER_GROUP.findall(text):
        for number in map(int, _DIGITS.findall(group)):
            if number not in seen:
                seen.append(number)
    return seen


def strip_markers(text: str) -> str:
    return re.sub(r"[ \t]{2,}", " ", MARKER_GROUP.sub("", text)).strip()


# -- what an answer states: numbers and names -------------------------------------------
_NUMBER = re.compile(
    r"(\d+(?:[.,]\d{3})+(?![.,]?\d)|\d+(?:[.,]\d+)?)\s*"
    r"(천|만|억|千|万|萬|亿|億|ribu|juta|miliar|triliun|thousand|million|billion|trillion)?",
    re.IGNORECASE,
)
_MULTIPLIERS = {
    "천": 1e3,
    "千": 1e3,
    "ribu": 1e3,
    "thousand": 1e3,
    "만": 1e4,
    "万": 1e4,
    "萬": 1e4,
    "억": 1e8,
    "亿": 1e8,
    "億": 1e8,
    "juta": 1e6,
    "million": 1e6,
    "miliar": 1e9,
    "billion": 1e9,
    "triliun": 1e12,
    "trillion": 1e12,
}


# Small numbers written as words ("only given nine days", "sembilan hari", "九天", "아홉 명"), so that
# "9 hari" holds on an English paragraph that says "nine days". "one", "satu", 一 and 한 are left
# out: they are articles and pronouns far more often than counts.
_NUMBER_WORDS = {
    word: value
    for words in (
        "two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
        "seventeen eighteen nineteen twenty",
        "dua tiga empat lima enam tujuh delapan sembilan sepuluh sebelas",
    )
    for value, word in enumerate(words.split(), 2)
}
_NUMBER_WORDS |= {
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
    "dozen": 12,
    "seratus": 100,
    "seribu": 1000,
}
_NUMBER_WORD = re.compile(rf"\b({'|'.join(_NUMBER_WORDS)})\b", re.IGNORECASE)
_CJK_DIGITS = {c: v for v, c in enumerate("二三四五六七八九", 2)} | {"两": 2, "兩": 2, "十": 10}
_CJK_COUNT = re.compile(
    r"(?<![一二两兩三四五六七八九十百千万萬亿億])([二两兩三四五六七八九十])"
    r"(?=[天个個名位年月周週次倍人小家])"
)
_KOREAN_COUNTS = {
    "두": 2,
    "세": 3,
    "네": 4,
    "다섯": 5,
    "여섯": 6,
    "일곱": 7,
    "여덟": 8,
    "아홉": 9,
    "열": 10,
    "스무": 20,
}
_KOREAN_COUNT = re.compile(rf"(?<![가-힣])({'|'.join(_KOREAN_COUNTS)})\s?(?=명|개|달|시간|번|배|곳|살|주|가지)")


def numbers(text: str) -> set[float]:
    """The values a text states: "3,000", "3.000" and "3천" are all 3000; "1,5" and "1.5" are 1.5;
    "nine", "sembilan", "九天" and "아홉 명" are 9. A number with a multiplier also counts without it
    ("3 juta": 3 and 3,000,000)."""
    text = unicodedata.normalize("NFKC", strip_markers(text))
    values = {float(_NUMBER_WORDS[m.group(1).lower()]) for m in _NUMBER_WORD.finditer(text)}
    values |= {float(_CJK_DIGITS[m.group(1)]) for m in _CJK_COUNT.finditer(text)}
    values |= {float(_KOREAN_COUNTS[m.group(1)]) for m in _KOREAN_COUNT.finditer(text)}
    for match in _NUMBER.finditer(text):
        digits, multiplier = match.groups()
        if re.fullmatch(r"\d+(?:[.,]\d{3})+", digits):
            value = float(re.sub(r"[.,]", "", digits))
        else:
            value = float(digits.replace(",", "."))
        values.add(value)
        if multiplier:
            values.add(value * _MULTIPLIERS[multiplier.lower()])
    return values


def _same_number(value: float, others: set[float]) -> bool:
    return any(math.isclose(value, other, rel_tol=1e-9) for other in others)


_LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z0-9&'’-]*")
# Capitalised words that name a language or country when a question asks "according to the
# Korean article": not what a passage must mention.
_LANGUAGE_WORDS = {
    "english",
    "korean",
    "korea",
    "chinese",
    "china",
    "indonesian",
    "indonesia",
    "japanese",
    "japan",
    "bahasa",
}


# English words that open a short answer ("In 2015.", "During a haircut.") and name nothing.
_FUNCTION_WORDS = {
    "a",
    "an",
    "the",
    "in",
    "on",
    "at",
    "by",
    "for",
    "from",
    "with",
    "during",
    "since",
    "after",
    "before",
    "about",
    "around",
    "of",
    "to",
}


def names(text: str, answer: bool = False) -> set[str]:
    """Latin-script names (capitalised words and acronyms), casefolded. A sentence's first word
    is a name only in a short answer ("Altman.") or before another capitalised word."""
    found = set()
    for sentence in split_sentences(unicodedata.normalize("NFKC", strip_markers(text))):
        words = list(_LATIN_WORD.finditer(sentence))
        for i, match in enumerate(words):
            word = match.group()
            if not (word[0].isupper() or any(c.isupper() for c in word[1:])):
                continue
            first = not sentence[: match.start()].strip(" \"'“‘(«")
            if first and not (
                answer and (len(words) <= 3 or (i + 1 < len(words) and words[i + 1].group()[0].isupper()))
            ):
                continue
            found.add(_folded(word))
    return found - _LANGUAGE_WORDS - _FUNCTION_WORDS


def _folded(word: str) -> str:
    return re.sub(r"['’]s$", "", word.casefold()).strip("'’-")


def _asked(question: str) -> set[str]:
    """Every Latin-script word of the question, casefolded: a name the answer shares with the
    question ("During …" for "during what activity", "Fitur …" for "Fitur apa …") adds nothing."""
    return {_folded(m.group()) for m in _LATIN_WORD.finditer(unicodedata.normalize("NFKC", question))}


def _mentions(text: str, name: str) -> bool:
    return (
        re.search(rf"(?<![a-z0-9]){re.escape(name)}(?![a-z0-9])", unicodedata.normalize("NFKC", text).casefold())
        is not None
    )


# -- what a question asks for --------------------------------------------------------------
_ASKS_NUMBER = re.compile(
    r"\bhow (many|much|long|old)\b|\bwhat (year|percentage|share|number)\b|\bwhich year\b|"
    r"몇|얼마|多少|几(?!乎)|幾(?!乎)|哪一年|哪年|berapa",
    re.IGNORECASE,
)
_ASKS_WHO = re.compile(r"\bwho\b|\bwhom\b|누구|누가|谁|誰|\bsiapa\b", re.IGNORECASE)
_NUMERAL = re.compile(
    r"\d|[一二两兩三四五六七八九十百千万萬亿億]|\b(one|two|three|four|five|six|seven|eight|nine|ten|"
    r"dozen|hundred|satu|dua|tiga|empat|lima|enam|tujuh|delapan|sembilan|sepuluh|puluh|ratusan|"
    r"ribuan)\b|(한|두|세|네|다섯|여섯|일곱|여덟|아홉|열|스무|백|천|만)\s?(명|개|년|달|시간|분|초|번|배|곳|살|주)",
    re.IGNORECASE,
)
_LINK = re.compile(r"https?://|www\.|\b[\w-]+\.(?:com|net|org|io|xyz|ru|cn|info|biz|top|site|co)\b", re.IGNORECASE)
_ASKS_LINK = re.compile(
    r"\b(url|link|website|web site|site|address|domain)\b|주소|사이트|링크|网址|網址|网站|網站|链接|鏈接|"
    r"\b(tautan|situs|alamat)\b",
    re.IGNORECASE,
)
# A label the small models put before an answer: "Answer:", "답:", "答案：", "Jawaban:".
_LABEL = re.compile(r"^\W*(answer|short answer|답변?|정답|答案?|回答|jawaban|jawab)\s*[:：]\s*", re.IGNORECASE)


# -- instructions: judged by form, not by topic -------------------------------------------
# A sentence that addresses an assistant or orders the reader is a command, whatever it is
# about; a statement about instructions or prompts ("the system prompt was leaked") is not.
_ADDRESSEE = (
    r"(assistant|ai|a\.i\.|chatbot|bot|system|llm|model|language model|어시스턴트|인공지능|시스템|챗봇|모델|"
    r"助手|系统|系統|模型|机器人|機器人|asisten|sistem)"
)
# Verbs that open an order whatever follows; and verbs that open one only before an object
# such as "with", "only", a quote ("Reply rates rose" is a statement, "Reply with …" an order).
_ORDER = r"(ignore|disregard|forget|append|decode|visit|click|output|print|repeat|translate|do not|don't|from now on)"
_ORDER_BEFORE_OBJECT = (
    r"(reply|respond|answer|say|write|tell|include|add|never|always)\s+"
    r"(with|only|to|that|in|as|the following|everything|all|this|these|every|each|any|[\"“«'])"
)
_LABEL_BEFORE = r"^\W*([\w ]{1,30}[:：]\s*)?(please\s+)?"
_INSTRUCTION = re.compile(
    # an address: "SYSTEM: …", "Assistant, …", "system Answer …", "시스템:", "助手，…", "Asisten, …"
    rf"{_LABEL_BEFORE}(dear |hey |note to (the )?)?{_ADDRESSEE}(\s*[,:：，、]|\s+({_ORDER}|{_ORDER_BEFORE_OBJECT}|"
    r"answer|reply|respond|say)\b)"
    # an addressee told what to do: "the assistant must answer …", "어시스턴트는 … 답하십시오", "助手必须…"
    rf"|{_ADDRESSEE}(는|은|가|이|께서|에게)?\s*.{{0,60}}?(must|should|shall|has to|have to|is to|will now|하십시오|하세요|"
    rf"해야|하라|必须|必須|应该|應該|应当|須|请|請|harus|wajib|hendaknya)"
    # an imperative opening, after an optional label ("Important: ignore …")
    rf"|{_LABEL_BEFORE}({_ORDER}\b|{_ORDER_BEFORE_OBJECT})"
    rf"|{_LABEL_BEFORE}(请(?!假|求|示|教|柬)|請(?!假|求|示|教|柬)|忽略|无视|無視|不要|务必|務必|只回答|输出|輸出)"
    rf"|{_LABEL_BEFORE}(abaikan|lupakan|jawab(lah)?|balas(lah)?|tambahkan|tuliskan|tulislah|katakan|sebutkan|"
    r"sampaikan|jangan|kunjungi|klik)\b"
    # Korean imperative or request endings
    r"|(하십시오|하세요|하라|해라|십시오|마십시오|마세요|주십시오|주세요|할 것)\W*$"
    # "ignore … above / previous …" anywhere, in the four languages
    r"|\b(ignore|disregard|forget)\b.{0,20}\b(above|previous|prior|earlier|preceding)\b"
    r"|\b(ignore|disregard|forget)\b.{0,20}\b(your|all|these|those|any) (instructions|prompts|rules)\b"
    r"|(이전|위의?|앞의?).{0,12}(지시|명령|지침).{0,12}무시|(忽略|无视|無視).{0,12}(指令|指示|以上|之前|提示)"
    r"|\b(abaikan|lupakan)\b.{0,30}\b(instruksi|perintah|petunjuk|sebelumnya|di atas)\b"
    # "…, sampaikan itu kepada pengguna" / "tell the user": an order placed after a statement
    r"|\b(sampaikan|katakan|beritahukan)\b.{0,30}\bpengguna\b|\btell the user\b",
    re.IGNORECASE,
)


def instructs(sentence: str) -> bool:
    """True if the sentence is an order (to an assistant or the reader), not a statement."""
    from .prompts import fence

    return _INSTRUCTION.search(fence(sentence)) is not None


# -- the check -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    claim: str  # the answer without its label and marker
    source: int | None  # 1-based passage that supports the claim, None if none does
    quote: str | None  # the supporting sentence, verbatim from that passage's paragraph
    reason: str | None  # why the claim is not supported (None when it is)

    @property
    def supported(self) -> bool:
        return self.source is not None


Similarity = Callable[[str, list[str]], list[float]]


def claim_of(answer: str) -> str:
    """The answer as a claim: markers and a leading "Answer:" label removed."""
    return _LABEL.sub("", strip_markers(answer)).strip()


def restates(claim: str, question: str) -> bool:
    """True if the claim adds no number, word or character pair that the question lacks
    (single characters, such as a Korean particle, add nothing unless they are numerals)."""
    from .keywords import tokenize

    added = set(tokenize(claim)) - set(tokenize(question))
    return all(len(token) < 2 and not _NUMERAL.search(token) for token in added)


def _lexical_share(claim: str, text: str, question: str) -> float:
    """Share of the claim's own words (not the question's) that the text contains; a word
    in a script without spaces counts when it occurs anywhere in the text."""
    from .keywords import tokenize

    own = {t for t in tokenize(claim) if len(t) > 1 or _NUMERAL.search(t)} - set(tokenize(question))
    words, folded = set(tokenize(text)), unicodedata.normalize("NFKC", text).casefold()
    return sum(t in words or (not t.isascii() and t in folded) for t in own) / len(own) if own else 0.0


def _problem_with_answer(claim: str, question: str) -> str | None:
    """What makes an answer no answer, whatever the passages say."""
    if not claim or not any(unicodedata.category(c)[0] in "LN" for c in claim):
        return "the answer is empty"
    if restates(claim, question):
        return "the answer only restates the question"
    if _ASKS_NUMBER.search(question) and not _NUMERAL.search(claim):
        return "the question asks for a number and the answer gives none"
    if _ASKS_WHO.search(question) and not any(c.isalpha() for c in claim):
        return "the question asks who and the answer names no one"
    if _LINK.search(claim) and not _ASKS_LINK.search(question) and not _LINK.search(question):
        return "the answer gives a link the question did not ask for"
    if instructs(claim):
        return "the answer is an instruction, not an answer"
    return None


def evidence_sentence(claim: str, text: str, question: str, similarity: Similarity) -> tuple[str, float]:
    """The sentence of `text` the claim rests on, and how similar it is to the claim: the one
    stating most of the claim's numbers and names, then most of its words, then the closest."""
    sentences = split_sentences(text) or [text]
    if len(sentences) == 1:
        return sentences[0], similarity(claim, sentences)[0]
    wanted_numbers = numbers(claim) - numbers(question)
    wanted_names = names(claim, answer=True) - _asked(question)

    def overlap(sentence: str) -> tuple[int, float]:
        values = numbers(sentence)
        anchored = sum(_same_number(v, values) for v in wanted_numbers) + sum(
            _mentions(sentence, n) for n in wanted_names
        )
        return anchored, _lexical_share(claim, sentence, question)

    scores = [overlap(s) for s in sentences]
    cosines = similarity(claim, sentences)
    best = max(range(len(sentences)), key=lambda i: (scores[i], cosines[i]))
    return sentences[best], cosines[best]


def _problem_with_source(
    claim: str, question: str, text: str, evidence: str, cosine: float, support_similarity: float
) -> str | None:
    """Why `text` (a cited paragraph) does not support the claim, or None if it does."""
    asked = _asked(question)
    values = numbers(text)
    invented = [f"{value:g}" for value in sorted(numbers(claim) - numbers(question)) if not _same_number(value, values)]
    if invented:  # all of them: "2021年9月25日" on a paragraph saying "September 25" invents 9 and 2021
        return (
            f"the number {invented[0]} is"
            if len(invented) == 1
            else f"the numbers {', '.join(invented[:-1])} and {invented[-1]} are"
        ) + " not in the cited passage"
    missing = sorted(n for n in names(claim, answer=True) - asked if not _mentions(text, n))
    if missing:  # named as the claim writes it ("John", not the casefolded "john")
        written = re.search(
            rf"(?<![a-z0-9]){re.escape(missing[0])}", unicodedata.normalize("NFKC", claim), re.IGNORECASE
        )
        return f"the name {written.group() if written else missing[0]} is not in the cited passage"
    if instructs(evidence):
        return "the cited sentence is an instruction, not a statement of fact"
    anchored = (numbers(claim) - numbers(question)) or (names(claim, answer=True) - asked)
    if anchored or _lexical_share(claim, text, question) >= 0.5 or cosine >= support_similarity:
        return None
    return "the cited passage does not say this"


def check_answer(
    answer: str,
    cited: int | None,
    question: str,
    sources: Sequence[Source],
    similarity: Similarity,
    support_similarity: float,
) -> Verdict:
    """Whether the answer holds on the passage the model chose, and on which of its sentences.
    The small models often write the answer from one passage and choose the number of another;
    another passage vouches for the answer only if its evidence sentence is also about the
    question (RECITE_QUESTION_SHARE): one that merely names the answer's people ("John
    Schulman" for who founded Segment) would vouch for a wrong answer."""
    claim = claim_of(answer)
    problem = _problem_with_answer(claim, question)
    if problem:
        return Verdict(claim, None, None, problem)
    if not cited or not 1 <= cited <= len(sources):
        return Verdict(claim, None, None, "no passage was cited")
    chosen = _verdict_on(claim, cited, question, sources, similarity, support_similarity)
    # Held by its names alone, the chosen sentence may not say what the answer does ("He co-led the
    # safety team with Ilya Sutskever" on a sentence listing Sutskever among those who left): another
    # sentence is cited instead if it holds clearly more of the answer's words.
    wanted = _lexical_share(claim, chosen.quote, question) + CLEARLY_MORE_OF_THE_CLAIM if chosen.supported else 0.0

    def vouching() -> Iterator[Verdict]:
        for other in range(1, len(sources) + 1):
            # A sentence holds no more of the question or the answer than its whole paragraph, so
            # the paragraph rules most passages out before their sentences are embedded.
            if other == cited or not _may_vouch(claim, sources[other - 1].text, question, wanted):
                continue
            verdict = _verdict_on(claim, other, question, sources, similarity, support_similarity)
            if verdict.supported and _may_vouch(claim, verdict.quote, question, wanted):
                yield verdict

    if not chosen.supported:
        return next(vouching(), chosen)
    return max(vouching(), key=lambda v: _lexical_share(claim, v.quote, question), default=chosen)


def _may_vouch(claim: str, text: str, question: str, wanted: float) -> bool:
    """Whether a sentence of a passage the model did not choose is about the question and holds
    at least `wanted` of the answer's own words (a paragraph's figures bound its sentences')."""
    return question_share(text, question) >= RECITE_QUESTION_SHARE and _lexical_share(claim, text, question) >= wanted


# How much of the question (its words and CJK bigrams) a sentence of a passage the model did not
# choose must repeat to vouch for the answer; calibrated on eval/gold.jsonl (docs/evaluation.md).
RECITE_QUESTION_SHARE = 0.4
# How much more of the answer's own words another such sentence must hold to be cited instead of
# a chosen one that holds the answer.
CLEARLY_MORE_OF_THE_CLAIM = 0.25


def question_share(sentence: str, question: str) -> float:
    """The share of the question's distinct tokens that the sentence contains."""
    from .keywords import tokenize

    asked = set(tokenize(question))
    return len(asked & set(tokenize(sentence))) / len(asked) if asked else 0.0


def _verdict_on(
    claim: str, cited: int, question: str, sources: Sequence[Source], similarity: Similarity, support_similarity: float
) -> Verdict:
    text = sources[cited - 1].text
    evidence, cosine = evidence_sentence(claim, text, question, similarity)
    problem = _problem_with_source(claim, question, text, evidence, cosine, support_similarity)
    return Verdict(claim, None if problem else cited, None if problem else evidence, problem)


def resolve(verdict: Verdict, sources: Sequence[Source], paragraph: Callable[[str, int], Located]) -> Citation:
    """The citation of a supported verdict: file, paragraph (and page), the paragraph's text
    and the evidence sentence as it stands in that text."""
    source = sources[verdict.source - 1]
    found = paragraph(source.file, source.paragraph)
    text = found.text
    quote = (
        verdict.quote
        if verdict.quote and verdict.quote in text
        else next((s for s in split_sentences(text) if verdict.quote and verdict.quote in s), text)
    )
    return Citation(verdict.source, source.file, source.paragraph, text, quote, found.page, found.ocr)
