"""The gold file (eval/gold.jsonl, described in eval/README.md): loading, validation against
the documents, and choosing questions from it.

JSONL, one question per line: `id`, `question`, `lang`, `file`, `evidence`, `answers`, `kind`.
Every bad line is named before anything runs.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rag.errors import RagError
from rag.settings import PROJECT_ROOT

if TYPE_CHECKING:
    from rag.documents import Paragraph

DEFAULT_GOLD = PROJECT_ROOT / "eval" / "gold.jsonl"
KEYS = ("id", "question", "lang", "file", "evidence", "answers", "kind")
KINDS = ("fact", "number", "cross", "unanswerable")
MAX_PROBLEMS_SHOWN = 20


@dataclass(frozen=True)
class GoldItem:
    id: str
    question: str
    lang: str
    kind: str
    file: str | None
    evidence: str | None
    answers: tuple[str, ...]
    line: int
    evidence_paragraphs: tuple[int, ...] = ()  # numbers (¶) of the paragraphs of `file` holding the evidence
    follows: str | None = None  # id of the item this follow-up question is asked after

    @property
    def answerable(self) -> bool:
        return self.file is not None


def collapse(text: str) -> str:
    """Whitespace runs (line breaks included) as one space, ends trimmed."""
    return " ".join(text.split())


def holds(text: str, evidence: str) -> bool:
    """Whether `text` contains the evidence, whitespace ignored: in a PDF a line or page break
    may fall anywhere, and between CJK characters it leaves no space."""
    return "".join(evidence.split()) in "".join(text.split())


def same_document(file: str, files: Iterable[str]) -> str:
    """`file`, or the one document of another format with the same name before the suffix:
    gold made on the .txt seeds also scores their PDF, DOCX or HTML conversions."""
    stem = str(Path(file).with_suffix(""))
    matches = [other for other in files if str(Path(other).with_suffix("")) == stem]
    return matches[0] if file not in files and len(matches) == 1 else file


def shorten(text: str, limit: int = 60) -> str:
    text = collapse(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _problems_of(
    row: object, paragraphs: dict[str, Sequence[Paragraph]], docs_dir: Path
) -> tuple[list[str], GoldItem | None]:
    """What is wrong with one parsed gold line (empty if nothing), and the item if usable."""
    from rag.assistant import clean_question

    if not isinstance(row, dict):
        return ["not a JSON object"], None
    missing = [key for key in KEYS if key not in row]
    if missing:
        return [f"missing key{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}"], None
    problems = []
    for key in ("id", "question", "lang"):
        if not isinstance(row[key], str) or not row[key].strip():
            problems.append(f"{key} must be a non-empty string")
    if isinstance(row["question"], str) and row["question"].strip():
        try:
            clean_question(row["question"])
        except RagError as error:
            problems.append(f"question unusable: {error}")
    kind = row["kind"]
    if kind not in KINDS:
        problems.append(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    answers = row["answers"]
    if not isinstance(answers, list) or not all(isinstance(a, str) and a.strip() for a in answers):
        problems.append("answers must be a list of non-empty strings")
        answers = []
    file, evidence = row["file"], row["evidence"]
    if kind == "unanswerable":
        if file is not None or evidence is not None or answers:
            problems.append("an unanswerable question needs file and evidence null and answers []")
    elif kind in KINDS:
        if not isinstance(file, str) or not file:
            problems.append(f"a {kind} question needs a file (a string), not {file!r}")
        if not isinstance(evidence, str) or not evidence.strip():
            problems.append(f"a {kind} question needs evidence (a non-empty string), not {evidence!r}")
        if not answers:
            problems.append(f"a {kind} question needs at least one answer")
    follows = row.get("follows")
    if follows is not None and (not isinstance(follows, str) or not follows.strip()):
        problems.append(f"follows must be the id of an earlier item, not {follows!r}")
    if problems:
        return problems, None
    found: tuple[int, ...] = ()
    if file is not None:
        file = same_document(file, paragraphs)
        if file not in paragraphs:
            return [f"file {file!r} is not in the documents folder {docs_dir}"], None
        texts = [p.text for p in paragraphs[file]]
        at = [i for i, text in enumerate(texts) if holds(text, evidence)]
        if not at:  # a PDF paragraph broken by a page end is two, a long one cut is two pieces
            at = next(([i, i + 1] for i in range(len(texts) - 1) if holds(texts[i] + texts[i + 1], evidence)), [])
        if not at:
            return [f'evidence not found in any paragraph of {file}: "{shorten(evidence)}"'], None
        found = tuple(dict.fromkeys(paragraphs[file][i].number for i in at))
    item = GoldItem(
        row["id"].strip(),
        row["question"],
        row["lang"].strip(),
        kind,
        file,
        evidence,
        tuple(answers),
        0,
        found,
        follows.strip() if follows else None,
    )
    return [], item


def load_gold(path: Path, docs_dir: Path) -> list[GoldItem]:
    """The gold items of a JSONL file, checked against the documents; RagError naming every bad line."""
    from rag.documents import read_documents

    path = Path(path)
    if not path.is_file():
        raise RagError(f"gold file not found: {path}" if not path.exists() else f"gold file is not a file: {path}")
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise RagError(f"gold file {path} is not UTF-8 text") from None
    except OSError as error:
        raise RagError(f"cannot read gold file {path}: {error.strerror or error}") from None
    documents, _ = read_documents(Path(docs_dir))
    paragraphs = {d.file: d.paragraphs for d in documents}
    items: list[GoldItem] = []
    problems: list[str] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            problems.append(f"line {number}: not valid JSON ({error.msg} at column {error.colno})")
            continue
        found, item = _problems_of(row, paragraphs, docs_dir)
        problems.extend(f"line {number}: {problem}" for problem in found)
        if item is None:
            continue
        if item.id in first_line:
            problems.append(f"line {number}: duplicate id {item.id!r} (first on line {first_line[item.id]})")
            continue
        if item.follows is not None and item.follows not in first_line:
            problems.append(f"line {number}: follows {item.follows!r}, which is not an earlier item")
            continue
        first_line[item.id] = number
        items.append(GoldItem(**{**item.__dict__, "line": number}))
    if problems:
        shown = "; ".join(problems[:MAX_PROBLEMS_SHOWN])
        more = f"; and {len(problems) - MAX_PROBLEMS_SHOWN} more" if len(problems) > MAX_PROBLEMS_SHOWN else ""
        lines_bad = len({p.split(":")[0] for p in problems})
        raise RagError(f"{path}: {lines_bad} invalid line{'s' if lines_bad > 1 else ''}: {shown}{more}")
    if not items:
        raise RagError(f"gold file {path} has no questions")
    return items


def _stable_key(item_id: str) -> str:
    return hashlib.sha256(item_id.encode("utf-8")).hexdigest()


def sample(items: Sequence[GoldItem], n: int) -> list[GoldItem]:
    """A deterministic sample of n items spread evenly over the languages, in gold-file order.

    Within each language items are taken in the order of sha256(id), so the sample does not
    depend on the order of the file and barely moves when questions are added.
    """
    if n < 1:
        raise RagError(f"--sample must be at least 1, not {n}")
    by_lang: dict[str, list[GoldItem]] = {}
    for item in sorted(items, key=lambda i: _stable_key(i.id)):
        by_lang.setdefault(item.lang, []).append(item)
    chosen: list[GoldItem] = []
    queues = [by_lang[lang] for lang in sorted(by_lang)]
    while len(chosen) < min(n, len(items)):
        for queue in queues:
            if queue and len(chosen) < n:
                chosen.append(queue.pop(0))
    order = {item.id: position for position, item in enumerate(items)}
    return sorted(chosen, key=lambda i: order[i.id])


def parse_ids(values: Iterable[str]) -> list[str]:
    """Ids from arguments: `q001`, `q001,q002` or `@file` (ids separated by space, comma or lines; # comments)."""
    ids: list[str] = []
    for value in values:
        if value.startswith("@"):
            path = Path(value[1:])
            try:
                text = path.read_text(encoding="utf-8")
            except OSError:
                raise RagError(f"id list not found: {path}") from None
            text = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
        else:
            text = value
        ids.extend(part for part in re.split(r"[\s,]+", text) if part)
    return ids


def select(
    items: Sequence[GoldItem], sample_size: int | None = None, ids: Sequence[str] | None = None
) -> list[GoldItem]:
    if ids:
        known = {item.id for item in items}
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise RagError(f"unknown gold ids: {', '.join(unknown)}")
        wanted = set(ids)
        items = [item for item in items if item.id in wanted]
    if sample_size is not None:
        items = sample(items, sample_size)
    return list(items)


# When the gold file cannot be read: one question per language.
FALLBACK_QUESTIONS = [
    "How many public PRs did Codex generate according to the Korean summary?",
    "OpenAI는 메타의 '초지능' 팀에 최소 몇 명의 연구원을 잃었나요?",
    "根据中文摘要,作者一共面试了多少家人工智能公司?",
    "Berapa minggu Codex dibangun dan diluncurkan?",
]


def typical_questions(gold: Path = DEFAULT_GOLD) -> list[str]:
    """Typical questions for timing: the gold set's answerable ones, the languages taking turns
    (a few fixed ones when the gold file is unreadable)."""
    by_language: dict[str, list[str]] = {}
    try:
        for line in gold.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                if row.get("answers") and row.get("kind") != "unanswerable":
                    by_language.setdefault(row.get("lang", "?"), []).append(row["question"])
    except (OSError, ValueError, KeyError):
        by_language = {}
    if not by_language:
        return list(FALLBACK_QUESTIONS)
    ordered, lists = [], [by_language[k] for k in sorted(by_language)]
    for i in range(max(len(x) for x in lists)):
        ordered.extend(x[i] for x in lists if i < len(x))
    return ordered
