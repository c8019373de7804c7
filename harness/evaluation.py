"""`rag eval`: score the assistant on gold question/answer pairs.

The gold file is JSONL, one question per line (see `eval/README.md`):
`id`, `question`, `lang`, `file`, `evidence`, `answers`, `kind`. It is validated first
against the paragraphs of the documents folder being evaluated; every bad line is named.

For each question the harness asks the assistant twice through its public API:
`ask(question, k=10, retrieve_only=True)` ranks chunks for the retrieval metrics, and
(unless --retrieve-only) `ask(question, k=K)` answers from the K chunks retrieved, as a
user would get it. Each answer is also checked for whether the passages the LLM read
(`Answer.passages`, else its hits) held the evidence, to tell retrieval from generation.

Retrieval: the rank of the first retrieved chunk from the gold file whose text contains
the evidence (both with whitespace collapsed); hit@1/3/5/10 (and hit@K), MRR@10, nDCG@10
with that chunk as the one relevant item.
Answers: accuracy (an accepted answer is contained in the answer after NFKC, case
folding and thousands-separator normalisation, markers removed; a number only matches a
whole number); citation precision (share of citations whose paragraph contains the
evidence, or lies in the gold file and holds at least half of it), citation recall
(share of answerable questions citing a paragraph that holds the evidence); refusal
accuracy for unanswerable (abstained) and answerable (not abstained) questions.
Latency: p50/p95 of the assistant's own timings (models are loaded before timing).

Deterministic: questions run in gold-file order after a fixed warm-up, at temperature 0,
so the same index and models give the same numbers (timings excepted).

Heavy libraries (the models, matplotlib, tqdm) are imported only inside `run`.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import math
import re
import sys
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rag.cli import Command
from rag.errors import RagError
from rag.settings import PROJECT_ROOT, RETRIEVAL_MODES, given_flags, settings_from_args

DEFAULT_GOLD = PROJECT_ROOT / "eval" / "gold.jsonl"
KEYS = ("id", "question", "lang", "file", "evidence", "answers", "kind")
KINDS = ("fact", "number", "cross", "unanswerable")
CUTOFFS = (1, 3, 5, 10)
DEPTH = 10  # passages ranked per question for the retrieval metrics (MRR@10, nDCG@10)
WARM_UP = "What do the documents say?"
MAX_PROBLEMS_SHOWN = 20


# -- gold file ------------------------------------------------------------------------------
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
    evidence_paragraphs: tuple[int, ...] = ()  # paragraphs of `file` holding the evidence

    @property
    def answerable(self) -> bool:
        return self.file is not None


def collapse(text: str) -> str:
    """Whitespace runs (line breaks included) as one space, ends trimmed."""
    return " ".join(text.split())


def _short(text: str, limit: int = 60) -> str:
    text = collapse(text)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _problems_of(row: object, paragraphs: dict[str, list[str]], docs_dir: Path) -> tuple[list[str], GoldItem | None]:
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
    if problems:
        return problems, None
    found: tuple[int, ...] = ()
    if file is not None:
        if file not in paragraphs:
            return [f"file {file!r} is not in the documents folder {docs_dir}"], None
        needle = collapse(evidence)
        found = tuple(n for n, text in enumerate(paragraphs[file], 1) if needle in collapse(text))
        if not found:
            return [f"evidence not found in any paragraph of {file}: \"{_short(evidence)}\""], None
    item = GoldItem(row["id"].strip(), row["question"], row["lang"].strip(), kind, file, evidence,
                    tuple(answers), 0, found)
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
    paragraphs = {d.file: [p.text for p in d.paragraphs] for d in documents}
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


def select(items: Sequence[GoldItem], sample_size: int | None = None,
           ids: Sequence[str] | None = None) -> list[GoldItem]:
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


# -- metrics ---------------------------------------------------------------------------------
def first_relevant_rank(hits: Sequence, file: str, evidence: str) -> int | None:
    """1-based rank of the first hit from `file` whose chunk text contains the evidence."""
    needle = collapse(evidence)
    for rank, hit in enumerate(hits, 1):
        if hit.chunk.file == file and needle in collapse(hit.chunk.text):
            return rank
    return None


def ranking_metrics(ranks: Sequence[int | None], cutoffs: Iterable[int] = CUTOFFS, depth: int = DEPTH) -> dict:
    """hit@c for each cutoff, MRR@depth and nDCG@depth of one relevant item per question.

    A rank of None (or beyond the depth) scores 0. With a single relevant item the ideal
    DCG is 1, so nDCG is 1 / log2(rank + 1).
    """
    n = len(ranks)
    if n == 0:
        return {"n": 0}
    found = [r for r in ranks if r is not None]
    metrics: dict = {"n": n}
    for cutoff in sorted(set(cutoffs)):
        metrics[f"hit@{cutoff}"] = sum(r <= cutoff for r in found) / n
    metrics[f"mrr@{depth}"] = sum(1.0 / r for r in found if r <= depth) / n
    metrics[f"ndcg@{depth}"] = sum(1.0 / math.log2(r + 1) for r in found if r <= depth) / n
    return metrics


# Thousands separators: "830.000", "830,000", "3'000" -> "830000"; "5.30" and "7.8" stay.
_THOUSANDS = re.compile(r"(?<=\d)[.,'’](?=\d{3}(?!\d))")
_MARKERS = re.compile(r"\[\s*\d+(?:\s*[,，、;]\s*\d+)*\s*\]")


def normalise_answer(text: str) -> str:
    """NFKC, case folding, thousands separators removed, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return collapse(_THOUSANDS.sub("", text))


def _inside_number(text: str, position: int, step: int) -> bool:
    """Whether the character next to a match (at `position`, going `step`) continues a number."""
    neighbour = position + step
    if not 0 <= neighbour < len(text):
        return False
    if text[neighbour].isdigit():
        return True
    after = neighbour + step  # "7" in "7.8" or "1" in "0.1": a decimal point between digits
    return text[neighbour] in ".," and 0 <= after < len(text) and text[after].isdigit()


def contains_answer(text: str, answer: str) -> bool:
    """`answer` occurs in `text` (both normalised); a number must not be part of a larger number."""
    text, answer = normalise_answer(text), normalise_answer(answer)
    if not answer:
        return False
    start = text.find(answer)
    while start != -1:
        end = start + len(answer)
        if not (answer[0].isdigit() and _inside_number(text, start, -1)) and \
                not (answer[-1].isdigit() and _inside_number(text, end - 1, +1)):
            return True
        start = text.find(answer, start + 1)
    return False


def answer_matches(text: str | None, answers: Iterable[str]) -> bool:
    """A correct answer contains at least one accepted answer; [n] markers are ignored."""
    if not text:
        return False
    text = _MARKERS.sub(" ", text)
    return any(contains_answer(text, answer) for answer in answers)


def citation_supports(cited_file: str, cited_text: str, gold_file: str, evidence: str) -> bool:
    """A citation supports the gold answer if its paragraph contains the evidence, or lies in
    the gold file and overlaps it: shares a contiguous half of the evidence (at least 8 characters)."""
    paragraph, needle = collapse(cited_text), collapse(evidence)
    if needle in paragraph:
        return True
    if cited_file != gold_file:
        return False
    match = difflib.SequenceMatcher(None, paragraph, needle, autojunk=False).find_longest_match(
        0, len(paragraph), 0, len(needle))
    return match.size >= max(8, math.ceil(len(needle) / 2))


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _mean(flags: Sequence[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


# -- running ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Configuration:
    label: str
    settings: object  # rag.settings.Settings

    def describe(self) -> dict:
        s = self.settings
        return {"label": self.label, "retrieval": s.retrieval, "k": s.k,
                "llm": s.llm_url or s.llm_path.name, "embedder": Path(s.embedder_name).name,
                "docs": str(s.docs_dir), "index": str(s.index_dir), "temperature": s.temperature}


def _hit_json(hit, rank: int, relevant: int | None) -> dict:
    return {"rank": rank, "file": hit.chunk.file, "first": hit.chunk.first, "last": hit.chunk.last,
            "score": round(hit.score, 4), "evidence": rank == relevant}


def score_question(item: GoldItem, ranked: Sequence, answer, k: int, error: str | None = None,
                   retrieve_only: bool = False) -> dict:
    """The per-question record of results.jsonl: what was retrieved and answered, and its scores."""
    rank = first_relevant_rank(ranked, item.file, item.evidence) if item.answerable else None
    row = {"id": item.id, "lang": item.lang, "kind": item.kind, "question": item.question,
           "file": item.file, "evidence": item.evidence, "evidence_paragraphs": list(item.evidence_paragraphs),
           "answers": list(item.answers), "answerable": item.answerable, "rank": rank,
           "retrieved": [_hit_json(h, n, rank) for n, h in enumerate(ranked, 1)]}
    reasons: list[str] = []
    if item.answerable:
        if rank is None:
            reasons.append(f"evidence not in the top {len(ranked)} chunks")
        elif rank > k:
            reasons.append(f"evidence ranked {rank}, outside the {k} chunks retrieved for the answer")
    if retrieve_only:
        row.update(answer=None, failed=bool(reasons), reasons=reasons)
        return row
    if error is not None:
        row.update(answer=None, abstained=False, citations=[], correct=False if item.answerable else None,
                   cites_evidence=False if item.answerable else None, evidence_given=False, refusal_correct=False,
                   timings_ms={}, error=error, failed=True, reasons=[f"error: {error}", *reasons])
        return row
    citations = []
    for c in answer.citations:
        supports = citation_supports(c.file, c.text, item.file, item.evidence) if item.answerable else None
        citations.append({"n": c.n, "file": c.file, "paragraph": c.paragraph, "supports": supports})
    row["context"] = context_of(answer, item)
    row.update(answer=answer.text, abstained=answer.abstained, citations=citations,
               unsupported=list(getattr(answer, "unsupported", None) or []),
               timings_ms={key: round(value, 1) for key, value in answer.timings_ms.items()})
    if item.answerable:
        correct = not answer.abstained and answer_matches(answer.text, item.answers)
        cites = any(c.file == item.file and c.paragraph in item.evidence_paragraphs for c in answer.citations)
        given = any(p["evidence"] for p in row["context"])
        row.update(correct=correct, cites_evidence=cites, evidence_given=given, refusal_correct=not answer.abstained)
        if answer.abstained:
            reasons.insert(0, "abstained")
        elif not correct:
            reasons.insert(0, "wrong answer")
        elif not cites:
            reasons.append("citations miss the evidence paragraph")
        if not correct and rank is not None and rank <= k and not given:
            reasons.append("evidence retrieved but not among the passages the LLM read")
        row["failed"] = not correct
    else:
        row.update(correct=None, cites_evidence=None, refusal_correct=answer.abstained)
        if not answer.abstained:
            reasons.insert(0, "answered an unanswerable question")
        row["failed"] = not answer.abstained
    row["reasons"] = reasons
    return row


def context_of(answer, item: GoldItem) -> list[dict]:
    """What the LLM read, each entry marked if its text holds the evidence.

    The assistant's `passages` (one paragraph each) when its Answer has them, else the
    retrieved chunks it was given.
    """
    needle = collapse(item.evidence) if item.answerable else None
    passages = getattr(answer, "passages", None)
    if passages:
        return [{"rank": n, "file": p.file, "first": p.paragraph, "last": p.paragraph,
                 "evidence": needle is not None and p.file == item.file and needle in collapse(p.text)}
                for n, p in enumerate(passages, 1)]
    return [{"rank": n, "file": h.chunk.file, "first": h.chunk.first, "last": h.chunk.last,
             "evidence": needle is not None and h.chunk.file == item.file and needle in collapse(h.chunk.text)}
            for n, h in enumerate(answer.hits, 1)]


def answer_metrics(rows: Sequence[dict]) -> dict:
    """Answer quality over the rows of a full run: shares, with the counts they come from."""
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    cited = [c["supports"] for r in answerable for c in r["citations"]]
    correct = [r["correct"] for r in answerable]
    cites = [r["cites_evidence"] for r in answerable]
    refused = [r["abstained"] for r in unanswerable]
    answered = [not r["abstained"] and "error" not in r for r in answerable]
    given = [bool(r.get("evidence_given")) for r in answerable]
    return {
        "n": len(rows), "answerable": len(answerable), "unanswerable": len(unanswerable),
        "evidence_given": _mean(given), "given_evidence": sum(given),
        "accuracy": _mean(correct), "correct": sum(correct),
        "citation_precision": _mean(cited), "citations": len(cited), "supporting_citations": sum(cited),
        "citation_recall": _mean(cites), "citing_evidence": sum(cites),
        "refusal_unanswerable": _mean(refused), "refused_unanswerable": sum(refused),
        "refusal_answerable": _mean(answered), "answered_answerable": sum(answered),
        "refusal": _mean([r["refusal_correct"] for r in rows]),
        "errors": sum("error" in r for r in rows),
    }


def latency_metrics(rows: Sequence[dict]) -> dict:
    result = {}
    for stage in ("retrieve", "first_token", "total"):
        values = [r["timings_ms"][stage] for r in rows if stage in r.get("timings_ms", {})]
        result[stage] = {"p50": percentile(values, 50), "p95": percentile(values, 95), "n": len(values)} \
            if values else None
    return result


def summarise(rows: Sequence[dict], cutoffs: Iterable[int], with_answers: bool) -> dict:
    ranks = [r["rank"] for r in rows if r["answerable"]]
    return {"questions": len(rows),
            "retrieval": ranking_metrics(ranks, cutoffs) if ranks else None,
            "answer": answer_metrics(rows) if with_answers else None}


def _group_order(key: str, value: str) -> tuple:
    return (KINDS.index(value) if key == "kind" and value in KINDS else len(KINDS), value)


def metrics_of(rows: Sequence[dict], cutoffs: Iterable[int], with_answers: bool) -> dict:
    """The metrics object of `--json` for one configuration's rows."""
    cutoffs = sorted(set(cutoffs))
    overall = summarise(rows, cutoffs, with_answers)
    result = {"questions": overall["questions"], "retrieval": overall["retrieval"],
              "answer": overall["answer"], "latency_ms": latency_metrics(rows)}
    for key, name in (("lang", "by_lang"), ("kind", "by_kind")):
        values = sorted({r[key] for r in rows}, key=lambda v: _group_order(key, v))
        result[name] = {v: summarise([r for r in rows if r[key] == v], cutoffs, with_answers) for v in values}
    result["failed"] = [r["id"] for r in rows if r["failed"]]
    return result


def _progress(total: int, description: str, enabled: bool = True):
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit="q", file=sys.stderr, dynamic_ncols=True,
                mininterval=0.5, disable=not enabled)


def check_index(assistant, items: Sequence[GoldItem]) -> None:
    """RagError if the assistant's index does not hold the gold evidence where the documents do."""
    settings = assistant.settings
    for item in items:
        for number in item.evidence_paragraphs:
            try:
                text = assistant.index.paragraph(item.file, number).text
            except (KeyError, IndexError):
                text = None
            if text is None or collapse(item.evidence) not in collapse(text):
                raise RagError(f"the index in {settings.index_dir} does not match the documents in "
                               f"{settings.docs_dir} ({item.file} ¶{number} differs or is missing); "
                               f"run `rag index --docs {settings.docs_dir} --index {settings.index_dir}`")


def evaluate(configuration: Configuration, items: Sequence[GoldItem], retrieve_only: bool,
             progress: bool = True) -> list[dict]:
    """The per-question records of one configuration, in gold order."""
    import gc

    from rag.assistant import Assistant

    assistant = Assistant(configuration.settings)
    k = configuration.settings.k
    depth = max(DEPTH, k)
    try:
        check_index(assistant, items)
        # Load the models (and, for the LLM, process the fixed system prompt) before timing.
        if retrieve_only:
            assistant.ask(WARM_UP, k=1, retrieve_only=True)
        else:
            assistant.ask(WARM_UP, k=1, max_tokens=1)
        bar = _progress(len(items), f"{configuration.label}: {'retrieving' if retrieve_only else 'answering'}",
                        enabled=progress)
        rows = []
        with bar:
            for item in items:
                retrieved = assistant.ask(item.question, k=depth, retrieve_only=True)
                if retrieve_only:
                    row = score_question(item, retrieved.hits, None, k, retrieve_only=True)
                    row["timings_ms"] = {"retrieve": round(retrieved.timings_ms["retrieve"], 1)}
                else:
                    try:
                        answer, error = assistant.ask(item.question, k=k), None
                    except RagError as problem:
                        answer, error = None, str(problem)
                    row = score_question(item, retrieved.hits, answer, k, error)
                rows.append({"config": configuration.label, **row})
                bar.update(1)
        return rows
    finally:
        del assistant
        gc.collect()


def configurations(base, compare: bool, llms: Sequence[Path] | None) -> list[Configuration]:
    modes = list(RETRIEVAL_MODES) if compare else [base.retrieval]
    if llms:
        for path in llms:
            if not Path(path).is_file():
                raise RagError(f"LLM file not found: {path}")
        names = [Path(p).name for p in llms]
        labels = [name if names.count(name) == 1 else f"{name} ({names[:i + 1].count(name)})"
                  for i, name in enumerate(names)]
        models = list(zip(labels, [Path(p) for p in llms]))
    else:
        models = [(None, None)]
    result = []
    for mode in modes:
        for label, path in models:
            parts = [mode] if compare or not llms else []
            if label:
                parts.append(label)
            settings = base.replace(retrieval=mode, llm=path)
            result.append(Configuration(" · ".join(parts), settings))
    return result


# -- reporting -------------------------------------------------------------------------------
def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _ms(value) -> str:
    if value is None:
        return "–"
    return f"{value:.1f}" if value < 10 else f"{value:,.0f}"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]], right_from: int = 1) -> str:
    """A Markdown table, padded so it also reads well as plain text; columns from `right_from` right-aligned."""
    cells = [list(map(str, headers))] + [list(map(str, row)) for row in rows]
    widths = [max(_width(row[i]) for row in cells) for i in range(len(headers))]

    def line(row):
        return "| " + " | ".join(_pad(cell, widths[i], i >= right_from) for i, cell in enumerate(row)) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if i >= right_from else ("-" * (w + 2))
                          for i, w in enumerate(widths)) + "|"
    return "\n".join([line(cells[0]), rule, *map(line, cells[1:])])


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, width: int, right: bool) -> str:
    space = " " * (width - _width(text))
    return space + text if right else text + space


def _retrieval_columns(cutoffs: Sequence[int]) -> list[str]:
    return [f"hit@{c}" for c in cutoffs] + ["mrr@10", "ndcg@10"]


def _label(column: str, k: int) -> str:
    names = {"mrr@10": "MRR@10", "ndcg@10": "nDCG@10", "accuracy": "accuracy", "evidence_given": "evidence read",
             "citation_precision": "cit. precision", "citation_recall": "cit. recall",
             "refusal_unanswerable": "refusal (unans.)", "refusal_answerable": "answered (ans.)"}
    if column == f"hit@{k}" and k not in CUTOFFS:
        return f"hit@{k} (k)"
    return names.get(column, column)


ANSWER_COLUMNS = ["evidence_given", "accuracy", "citation_precision", "citation_recall", "refusal_unanswerable",
                  "refusal_answerable"]


def _metric_cells(summary: dict, columns: Sequence[str]) -> list[str]:
    cells = []
    for column in columns:
        source = summary["answer"] if column in ANSWER_COLUMNS else summary["retrieval"]
        cells.append(_fmt(source.get(column) if source else None))
    return cells


def _share(value, part: int, whole: int) -> str:
    return "–" if value is None else f"{value:.3f} ({part}/{whole})"


def summary_table(results: Sequence[tuple[Configuration, dict]], cutoffs: Sequence[int], k: int) -> str:
    """Retrieval metrics, one row per configuration; then answer metrics with their counts."""
    columns = _retrieval_columns(cutoffs)
    headers = ["configuration", "questions", "answerable"] + [_label(c, k) for c in columns]
    rows = [[c.label, str(m["questions"]), str((m["retrieval"] or {}).get("n", 0))] + _metric_cells(m, columns)
            for c, m in results]
    table = markdown_table(headers, rows)
    if results[0][1]["answer"] is None:
        return table
    headers = ["configuration"] + [_label(c, k) for c in ANSWER_COLUMNS]
    rows = []
    for configuration, metrics in results:
        a = metrics["answer"]
        rows.append([configuration.label,
                     _share(a["evidence_given"], a["given_evidence"], a["answerable"]),
                     _share(a["accuracy"], a["correct"], a["answerable"]),
                     _share(a["citation_precision"], a["supporting_citations"], a["citations"]),
                     _share(a["citation_recall"], a["citing_evidence"], a["answerable"]),
                     _share(a["refusal_unanswerable"], a["refused_unanswerable"], a["unanswerable"]),
                     _share(a["refusal_answerable"], a["answered_answerable"], a["answerable"])])
    return table + "\n\n" + markdown_table(headers, rows)


def group_table(results: Sequence[tuple[Configuration, dict]], group: str, cutoffs: Sequence[int], k: int) -> str:
    """One row per language (or kind); with several configurations, their columns side by side."""
    with_answers = results[0][1]["answer"] is not None
    several = len(results) > 1
    if several:
        columns = ["hit@5", "mrr@10"] + (["accuracy", "refusal_unanswerable"] if with_answers else [])
    else:
        columns = [f"hit@{c}" for c in cutoffs if c in (1, 5, 10) or c == k] + ["mrr@10"] + \
            (["accuracy", "citation_recall", "refusal_unanswerable"] if with_answers else [])
    title = {"by_lang": "language", "by_kind": "kind"}[group]
    headers = [title, "questions", "answerable"]
    for column in columns:
        headers += [f"{_label(column, k)} {c.label}" for c, _ in results] if several else [_label(column, k)]
    rows = []
    for value in [*results[0][1][group], "all"]:
        summaries = [m if value == "all" else m[group][value] for _, m in results]
        retrieval = summaries[0]["retrieval"]
        cells = [value, str(summaries[0]["questions"]), str(retrieval["n"] if retrieval else 0)]
        for column in columns:
            cells += [_metric_cells(summary, [column])[0] for summary in summaries]
        rows.append(cells)
    return markdown_table(headers, rows)


def latency_table(results: Sequence[tuple[Configuration, dict]]) -> str:
    headers = ["configuration", "retrieve p50", "retrieve p95", "first token p50", "first token p95",
               "total p50", "total p95"]
    rows = []
    for configuration, metrics in results:
        cells = [configuration.label]
        for stage in ("retrieve", "first_token", "total"):
            stats = metrics["latency_ms"][stage] or {}
            cells += [_ms(stats.get("p50")), _ms(stats.get("p95"))]
        rows.append(cells)
    return markdown_table(headers, rows)


def _passage(entry: dict) -> str:
    span = str(entry["first"]) if entry["first"] == entry["last"] else f"{entry['first']}-{entry['last']}"
    return f"{entry['file']} ¶{span}" + (" ✓" if entry["evidence"] else "")


def failure_markdown(row: dict, k: int) -> str:
    lines = [f"#### {row['id']} ({row['lang']}, {row['kind']}): {'; '.join(row['reasons'])}", "",
             f"- **Question:** {row['question']}"]
    if row["answerable"]:
        where = ", ".join(f"¶{n}" for n in row["evidence_paragraphs"])
        lines.append(f"- **Expected:** {' / '.join(row['answers'])}, from {row['file']} {where}: "
                     f"“{_short(row['evidence'], 200)}”")
        lines.append(f"- **Evidence rank:** {row['rank'] or 'not in the top ' + str(len(row['retrieved']))}")
    else:
        lines.append("- **Expected:** a refusal (the documents do not answer this)")
    if "context" in row:
        top = "; ".join(f"[{p['rank']}] {_passage(p)}" for p in row["retrieved"][:k])
        lines.append(f"- **Retrieved (top {k}):** {top}")
        lines.append("- **The LLM read:** " + ("; ".join(f"[{p['rank']}] {_passage(p)}" for p in row["context"])
                                                or "nothing (refused before asking the LLM)"))
    else:
        lines.append(f"- **Retrieved (top {k}):** " + "; ".join(f"[{p['rank']}] {_passage(p)}"
                                                                for p in row["retrieved"][:k]))
    if "abstained" in row:
        if row.get("error"):
            lines.append(f"- **Answered:** error: {row['error']}")
        else:
            refused = " *(abstained)*" if row["abstained"] else ""
            lines.append(f"- **Answered:** {collapse(row['answer'] or '')}{refused}")
            if row["citations"]:
                lines.append("- **Cited:** " + "; ".join(
                    f"[{c['n']}] {c['file']} ¶{c['paragraph']}" + (" ✓" if c["supports"] else "")
                    for c in row["citations"]))
            if row.get("unsupported"):
                lines.append("- **Sentences the assistant dropped as unsupported:** "
                             + "; ".join(f"“{collapse(u)}”" for u in row["unsupported"]))
    return "\n".join(lines)


def _shown(path) -> str:
    """A path as short as possible: relative to the working folder when it lies inside it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _command(args, items: Sequence[GoldItem]) -> str:
    parts = ["rag eval", "--gold", _shown(args.gold)]
    for flag, value in [*given_flags(args), ("--sample", args.sample)]:
        if value is not None:
            parts += [flag, _shown(value) if isinstance(value, Path) else str(value)]
    if args.ids:
        parts += ["--ids", *args.ids]
    if args.llms:
        parts += ["--llms", *map(str, args.llms)]
    parts += [flag for flag, on in (("--retrieve-only", args.retrieve_only), ("--compare", args.compare)) if on]
    return " ".join(parts)


def code_version() -> str:
    """The git commit of the code evaluated; uncommitted changes to it are named by their diff's hash."""
    import subprocess

    def git(*command: str) -> str:
        return subprocess.run(["git", "-C", str(PROJECT_ROOT), *command], capture_output=True, text=True,
                              timeout=10, check=True).stdout

    try:
        commit = git("rev-parse", "--short", "HEAD").strip()
        diff = git("diff", "HEAD", "--", "rag", "models")
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    if not diff:
        return commit
    return f"{commit} with uncommitted changes (diff sha256 {hashlib.sha256(diff.encode()).hexdigest()[:12]})"


def _context_lines(results, items: Sequence[GoldItem], args) -> list[str]:
    first = results[0][0].describe()
    answerable = sum(i.answerable for i in items)
    llms = ", ".join(f"`{n}`" for n in sorted({c.describe()["llm"] for c, _ in results}))
    generation = "retrieval only, no LLM" if args.retrieve_only else f"LLM {llms} at temperature 0"
    retrieval = "" if args.compare else f", {first['retrieval']} retrieval"
    return [
        f"{len(items)} questions ({answerable} answerable, {len(items) - answerable} unanswerable) "
        f"from `{_shown(args.gold)}`; documents `{_shown(first['docs'])}`, index `{_shown(first['index'])}`.",
        f"Embedder `{first['embedder']}`; {generation}; k = {first['k']} chunks retrieved per question{retrieval}.",
        f"Code: git {getattr(args, 'code_version', None) or code_version()}.",
    ]


DEFINITIONS = """\
- **hit@n**: share of answerable questions whose evidence is in one of the first n retrieved
  chunks (a chunk of the gold file containing the evidence text); **MRR@10** and **nDCG@10**
  reward a higher rank of that chunk.{context}
- **evidence read**: share of answerable questions where a passage the LLM read contains the evidence.
- **accuracy**: share of answerable questions whose answer contains an accepted answer
  (after NFKC, case folding and removing thousands separators).
- **cit. precision**: share of citations whose paragraph holds the evidence (or at least half
  of it, in the gold file); **cit. recall**: share of answerable questions citing the evidence paragraph.
- **refusal (unans.)**: share of unanswerable questions the assistant refused;
  **answered (ans.)**: share of answerable questions it did not refuse."""


def report_markdown(results, items: Sequence[GoldItem], rows_by_config: dict[str, list[dict]], args,
                    cutoffs: Sequence[int], charts: Sequence[str]) -> str:
    k = results[0][0].settings.k
    context = f"\n  **hit@{k} (k)**: within the k = {k} chunks retrieved for the answer." if k not in CUTOFFS else ""
    parts = ["# Evaluation report", "", *_context_lines(results, items, args), "",
             f"Reproduce with: `{_command(args, items)}`", "",
             "## Summary", "", summary_table(results, cutoffs, k), "", DEFINITIONS.format(context=context), "",
             "## By language", "", group_table(results, "by_lang", cutoffs, k), "",
             "## By kind", "", group_table(results, "by_kind", cutoffs, k), "",
             "## Latency (ms)", "", latency_table(results), "",
             "Wall-clock times from the assistant's own timings, after the models are loaded; "
             "the machine is shared, so they vary from run to run (the quality numbers do not).", ""]
    if charts:
        parts += ["## Charts", "", *[f"![{Path(c).stem.replace('_', ' ')}]({c})" for c in charts], ""]
    parts += ["## Failures", ""]
    for configuration, metrics in results:
        failed = [r for r in rows_by_config[configuration.label] if r["failed"]]
        heading = f"{len(failed)} of {metrics['questions']} questions failed"
        if len(results) > 1:
            parts += [f"### {configuration.label}: {heading}", ""]
        else:
            why = (f" (evidence outside the k = {k} chunks retrieved for the answer)." if args.retrieve_only
                   else " (wrong answer, wrongly refused or wrongly answered).")
            parts += [heading + why, ""]
        for row in failed:
            parts += [failure_markdown(row, k), ""]
    return "\n".join(parts).rstrip() + "\n"


def write_charts(results, out: Path, cutoffs: Sequence[int]) -> list[str]:
    """by_language.png (metrics per language) and latency.png (distribution per stage)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    with_answers = results[0][1]["answer"] is not None
    metrics = [("retrieval", "hit@5", "hit@5"), ("retrieval", "mrr@10", "MRR@10")]
    if with_answers:
        metrics += [("answer", "accuracy", "answer accuracy"), ("answer", "citation_recall", "citation recall")]
    langs = list(results[0][1]["by_lang"]) + ["all"]
    figure, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.8), squeeze=False)
    width = 0.8 / len(results)
    for axis, (section, key, title) in zip(axes[0], metrics):
        for position, (configuration, m) in enumerate(results):
            values = []
            for lang in langs:
                summary = m if lang == "all" else m["by_lang"][lang]
                values.append((summary[section] or {}).get(key) or 0.0)
            xs = [i + (position - (len(results) - 1) / 2) * width for i in range(len(langs))]
            axis.bar(xs, values, width, label=configuration.label)
        axis.set_xticks(range(len(langs)), langs)
        axis.set_ylim(0, 1.05)
        axis.set_title(title)
        axis.grid(axis="y", alpha=0.3)
    figure.suptitle("Metrics by language")
    figure.tight_layout()
    if len(results) > 1:
        handles, labels = axes[0][0].get_legend_handles_labels()
        figure.legend(handles, labels, loc="lower center", ncol=len(results), fontsize="small")
        figure.subplots_adjust(bottom=0.2)
    figure.savefig(out / "by_language.png", dpi=110)
    plt.close(figure)
    names.append("by_language.png")

    stages = [(s, t) for s, t in (("retrieve", "retrieve"), ("first_token", "first token"), ("total", "total"))
              if any(m["latency_ms"][s] for _, m in results)]
    figure, axes = plt.subplots(1, len(stages), figsize=(4.2 * len(stages), 3.8), squeeze=False)
    for axis, (stage, title) in zip(axes[0], stages):
        data = [[r["timings_ms"][stage] for r in m["_rows"] if stage in r.get("timings_ms", {})] or [0.0]
                for _, m in results]
        axis.boxplot(data, showfliers=True)
        low, high = min(min(d) for d in data), max(max(d) for d in data)
        if low > 0 and high / low > 100:  # e.g. keyword search next to dense search
            axis.set_yscale("log")
        axis.set_xticks(range(1, len(results) + 1), [c.label for c, _ in results],
                        rotation=20 if len(results) > 1 else 0, fontsize="small")
        axis.set_title(f"{title} (ms)")
        axis.grid(axis="y", alpha=0.3)
    figure.suptitle("Latency per question")
    figure.tight_layout()
    figure.savefig(out / "latency.png", dpi=110)
    plt.close(figure)
    names.append("latency.png")
    return names


def _rounded(value):
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


# -- CLI ---------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Score the assistant on gold question/answer pairs: retrieval (hit@n, MRR, nDCG), "
                          "answers (accuracy, citations, refusals) and latency, by language and kind.")
    parser.add_argument("--gold", type=Path, default=DEFAULT_GOLD,
                        help="gold JSONL file (default: eval/gold.jsonl of the project)")
    parser.add_argument("--retrieve-only", action="store_true", help="only score retrieval; no LLM")
    parser.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    parser.add_argument("--out", type=Path, metavar="DIR", help="write report.md, results.jsonl and PNG charts here")
    parser.add_argument("--compare", action="store_true",
                        help=f"evaluate every retrieval mode ({', '.join(RETRIEVAL_MODES)}) side by side")
    parser.add_argument("--llms", type=Path, nargs="+", metavar="GGUF",
                        help="evaluate each of these GGUF models with the same index and retrieval")
    subset = parser.add_mutually_exclusive_group()
    subset.add_argument("--sample", type=int, metavar="N",
                        help="a fixed sample of N questions, spread evenly over the languages")
    subset.add_argument("--ids", nargs="+", metavar="ID",
                        help="only these questions: ids, comma-separated ids, or @FILE with one id per line")


def run(args: argparse.Namespace) -> int:
    if args.retrieve_only and args.llms:
        raise RagError("--llms compares answers; it cannot be combined with --retrieve-only")
    args.code_version = code_version()  # before the long run, while the code is the code being run
    base = settings_from_args(args).replace(temperature=0.0)  # deterministic answers
    items = select(load_gold(args.gold, base.docs_dir), args.sample, parse_ids(args.ids) if args.ids else None)
    configs = configurations(base, args.compare, args.llms)
    cutoffs = sorted(set(CUTOFFS) | {base.k})
    out = args.out
    if out is not None:
        if out.exists() and not out.is_dir():
            raise RagError(f"--out must be a folder: {out} is a file")
        out.mkdir(parents=True, exist_ok=True)

    results, rows_by_config = [], {}
    for configuration in configs:
        rows = evaluate(configuration, items, args.retrieve_only)
        metrics = metrics_of(rows, cutoffs, with_answers=not args.retrieve_only)
        metrics["_rows"] = rows
        results.append((configuration, metrics))
        rows_by_config[configuration.label] = rows

    charts: list[str] = []
    if out is not None:
        with (out / "results.jsonl").open("w", encoding="utf-8") as handle:
            for configuration in configs:
                for row in rows_by_config[configuration.label]:
                    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        charts = write_charts(results, out, cutoffs)
        (out / "report.md").write_text(report_markdown(results, items, rows_by_config, args, cutoffs, charts),
                                       encoding="utf-8")

    if args.json:
        objects = [{"label": c.label, "config": c.describe(), **_rounded(m)} for c, m in results]
        header = {"gold": str(args.gold), "code": args.code_version}
        document = {**header, **objects[0]} if len(objects) == 1 else \
            {**header, "questions": len(items), "configurations": objects}
        print(json.dumps(document, ensure_ascii=False))
        return 0

    k = base.k
    print("\n".join(_context_lines(results, items, args)))
    print(f"\n## Summary\n\n{summary_table(results, cutoffs, k)}")
    print(f"\n## By language\n\n{group_table(results, 'by_lang', cutoffs, k)}")
    print(f"\n## By kind\n\n{group_table(results, 'by_kind', cutoffs, k)}")
    print(f"\n## Latency (ms)\n\n{latency_table(results)}")
    for configuration, metrics in results:
        failed = [r for r in rows_by_config[configuration.label] if r["failed"]]
        print(f"\n{configuration.label}: {len(failed)} of {metrics['questions']} failed" + (":" if failed else "."))
        for row in failed:
            print(f"  {row['id']} ({row['lang']}, {row['kind']}): {'; '.join(row['reasons'])}")
    if out is not None:
        print(f"\nReport: {out / 'report.md'} (with results.jsonl and {', '.join(charts)})")
    return 0


command = Command("score the assistant on gold question/answer pairs", add_arguments, run)
