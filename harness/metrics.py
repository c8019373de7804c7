"""Scores: retrieval ranks (hit@n, MRR, nDCG), answer matching and citation support, one
question's record, the metrics of a run and their percentiles.

Retrieval: the rank of the first retrieved chunk from the gold file whose text contains
the evidence (whitespace ignored: see gold.holds); hit@1/3/5/10 (and hit@K), MRR@10, nDCG@10
with that chunk as the one relevant item.
Answers: accuracy (an accepted answer is contained in the answer after NFKC, case
folding and thousands-separator normalisation, markers removed; a number only matches a
whole number); citation precision (share of citations whose paragraph contains the
evidence, or lies in the gold file and holds at least half of it), citation recall
(share of answerable questions citing a paragraph that holds the evidence); refusal
accuracy for unanswerable (abstained) and answerable (not abstained) questions.
Latency: p50/p95 of the assistant's own timings.
"""

from __future__ import annotations

import difflib
import math
import statistics
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rag.citations import MARKER_GROUP
from rag.settings import Settings
from rag.text import without_thousands_separators

from .gold import KINDS, GoldItem, collapse, holds

CUTOFFS = (1, 3, 5, 10)
DEPTH = 10  # passages ranked per question for the retrieval metrics (MRR@10, nDCG@10)


@dataclass(frozen=True)
class Configuration:
    """One set of settings evaluated, and the label its results go by."""

    label: str
    settings: Settings

    def describe(self) -> dict:
        s = self.settings
        return {
            "label": self.label,
            "retrieval": s.retrieval,
            "k": s.k,
            "llm": s.llm_url or s.llm_path.name,
            "embedder": Path(s.embedder_name).name,
            "docs": str(s.docs_dir),
            "index": str(s.index_dir),
            "temperature": s.temperature,
        }


def first_relevant_rank(hits: Sequence, file: str, evidence: str) -> int | None:
    """1-based rank of the first hit from `file` whose chunk text contains the evidence."""
    for rank, hit in enumerate(hits, 1):
        if hit.chunk.file == file and holds(hit.chunk.text, evidence):
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


def normalise_answer(text: str) -> str:
    """NFKC, case folding, thousands separators removed, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return collapse(without_thousands_separators(text))


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
        if not (answer[0].isdigit() and _inside_number(text, start, -1)) and not (
            answer[-1].isdigit() and _inside_number(text, end - 1, +1)
        ):
            return True
        start = text.find(answer, start + 1)
    return False


def answer_matches(text: str | None, answers: Iterable[str]) -> bool:
    """A correct answer contains at least one accepted answer; [n] markers are ignored."""
    if not text:
        return False
    text = MARKER_GROUP.sub(" ", text)
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
        0, len(paragraph), 0, len(needle)
    )
    return match.size >= max(8, math.ceil(len(needle) / 2))


def percentile(values: Sequence[float], q: int) -> float | None:
    """The q-th percentile (q a whole number, 0-100), interpolated linearly between the closest
    ranks (numpy's default); None for no values."""
    if not values:
        return None
    if len(values) == 1 or q in (0, 100):
        return max(values) if q == 100 else min(values)
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def p50(values: list[float]) -> float | None:
    return percentile(values, 50)


def p95(values: list[float]) -> float | None:
    return percentile(values, 95)


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def _mean(flags: Sequence[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def _hit_json(hit, rank: int, relevant: int | None) -> dict:
    return {
        "rank": rank,
        "file": hit.chunk.file,
        "first": hit.chunk.first,
        "last": hit.chunk.last,
        "score": round(hit.score, 4),
        "evidence": rank == relevant,
    }


def score_question(
    item: GoldItem, ranked: Sequence, answer, k: int, error: str | None = None, retrieve_only: bool = False
) -> dict:
    """The per-question record of results.jsonl: what was retrieved and answered, and its scores."""
    rank = first_relevant_rank(ranked, item.file, item.evidence) if item.answerable else None
    row = {
        "id": item.id,
        "lang": item.lang,
        "kind": item.kind,
        "question": item.question,
        "file": item.file,
        "evidence": item.evidence,
        "evidence_paragraphs": list(item.evidence_paragraphs),
        "answers": list(item.answers),
        "answerable": item.answerable,
        "rank": rank,
        "retrieved": [_hit_json(h, n, rank) for n, h in enumerate(ranked, 1)],
    }
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
        row.update(
            answer=None,
            abstained=False,
            citations=[],
            correct=False if item.answerable else None,
            cites_evidence=False if item.answerable else None,
            evidence_given=False,
            refusal_correct=False,
            timings_ms={},
            error=error,
            failed=True,
            reasons=[f"error: {error}", *reasons],
        )
        return row
    citations = []
    for c in answer.citations:
        supports = citation_supports(c.file, c.text, item.file, item.evidence) if item.answerable else None
        citations.append(
            {"n": c.n, "file": c.file, "paragraph": c.paragraph, "page": c.page, "ocr": c.ocr, "supports": supports}
        )
    row["context"] = context_of(answer, item)
    row.update(
        answer=answer.text,
        abstained=answer.abstained,
        citations=citations,
        reason=getattr(answer, "reason", None),
        why=getattr(answer, "why", None),
        answerable_probability=getattr(answer, "answerable", None),
        choice_probabilities=getattr(answer, "choice_probabilities", None),
        copy_probability=getattr(answer, "copy_probability", None),
        question_gain=getattr(answer, "question_gain", None),
        confidence=getattr(answer, "confidence", None),
        translation_probability=getattr(answer, "translation_probability", None),
        # The best passage's cosine, before the similarity floor (rag.assistant.Assistant.threshold).
        similarity=answer.passages[0].cosine if getattr(answer, "passages", None) else None,
        unsupported=list(getattr(answer, "unsupported", None) or []),
        timings_ms={key: round(value, 1) for key, value in answer.timings_ms.items()},
    )
    row["copied"] = getattr(answer, "copied", None)
    row["translation"] = getattr(answer, "translation", None)
    if item.answerable:
        correct = not answer.abstained and answer_matches(answer.text, item.answers)
        # Grounded: the words copied from the document, not a translation or a server's free
        # text, hold an accepted answer (the gold gives answers in the evidence's language too).
        row["copy_correct"] = not answer.abstained and answer_matches(row["copied"], item.answers)
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
    passages = getattr(answer, "passages", None)
    if passages:
        return [
            {
                "rank": n,
                "file": p.file,
                "first": p.paragraph,
                "last": p.paragraph,
                "evidence": item.answerable and p.file == item.file and holds(p.text, item.evidence),
            }
            for n, p in enumerate(passages, 1)
        ]
    return [
        {
            "rank": n,
            "file": h.chunk.file,
            "first": h.chunk.first,
            "last": h.chunk.last,
            "evidence": item.answerable and h.chunk.file == item.file and holds(h.chunk.text, item.evidence),
        }
        for n, h in enumerate(answer.hits, 1)
    ]


# Where an answerable question's answer was won or lost, in the order the answer is made: each
# row of a full run falls in exactly one (the first that holds).
LOSSES = (
    ("right", "right"),
    ("error", "an error"),
    ("not_read", "evidence not among the passages read"),
    ("refused", "refused, evidence read"),
    ("other_passage", "answered from another passage"),
    ("wrong_span", "evidence cited, the words copied miss the answer"),
)


def where_lost(row: dict) -> str:
    """Which of LOSSES an answerable row of a full run falls in."""
    if row["correct"]:
        return "right"
    if "error" in row:
        return "error"
    if not row.get("evidence_given"):
        return "not_read"
    if row["abstained"]:
        return "refused"
    if not any(c["supports"] for c in row["citations"]):
        return "other_passage"
    return "wrong_span"


def answer_metrics(rows: Sequence[dict]) -> dict:
    """Answer quality over the rows of a full run: shares, with the counts they come from."""
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    cited = [c["supports"] for r in answerable for c in r["citations"]]
    correct = [r["correct"] for r in answerable]
    copy_correct = [bool(r.get("copy_correct")) for r in answerable]
    cites = [r["cites_evidence"] for r in answerable]
    refused = [r["abstained"] for r in unanswerable]
    answered = [not r["abstained"] and "error" not in r for r in answerable]
    given = [bool(r.get("evidence_given")) for r in answerable]
    answers_given = [r for r in rows if not r.get("abstained") and "error" not in r]
    right = [bool(r["correct"]) for r in answers_given]
    return {
        "n": len(rows),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "evidence_given": _mean(given),
        "given_evidence": sum(given),
        "accuracy": _mean(correct),
        "correct": sum(correct),
        "copy_accuracy": _mean(copy_correct),
        "copy_correct": sum(copy_correct),
        "citation_precision": _mean(cited),
        "citations": len(cited),
        "supporting_citations": sum(cited),
        "citation_recall": _mean(cites),
        "citing_evidence": sum(cites),
        "refusal_unanswerable": _mean(refused),
        "refused_unanswerable": sum(refused),
        "refusal_answerable": _mean(answered),
        "answered_answerable": sum(answered),
        "refusal": _mean([r["refusal_correct"] for r in rows]),
        "correct_when_answered": _mean(right),
        "answers_given": len(right),
        "right_answers_given": sum(right),
        "errors": sum("error" in r for r in rows),
        "lost": {key: sum(where_lost(r) == key for r in answerable) for key, _ in LOSSES},
    }


def refused_below(rows: Sequence[dict], threshold: float, signal: str = "answerable_probability") -> list[dict]:
    """The rows as they would be with the gate on `signal` at `threshold` (by default
    Settings.min_answerable): a question whose signal is lower is refused. Exact for thresholds
    at or above the one of the run (below it, the refused rows were never answered)."""

    def refused(row: dict) -> dict:
        answerable = row["answerable"]
        return {
            **row,
            "abstained": True,
            "reason": "not_found",
            "citations": [],
            "evidence_given": False,
            "correct": False if answerable else None,
            "copy_correct": False if answerable else None,
            "cites_evidence": False if answerable else None,
            "refusal_correct": not answerable,
        }

    return [
        refused(r) if (r.get(signal) is not None and "error" not in r and r[signal] < threshold) else r for r in rows
    ]


def latency_metrics(rows: Sequence[dict]) -> dict:
    result = {}
    for stage in ("retrieve", "first_token", "total"):
        values = [r["timings_ms"][stage] for r in rows if stage in r.get("timings_ms", {})]
        result[stage] = (
            {"p50": percentile(values, 50), "p95": percentile(values, 95), "n": len(values)} if values else None
        )
    return result


def summarise(rows: Sequence[dict], cutoffs: Iterable[int], with_answers: bool) -> dict:
    ranks = [r["rank"] for r in rows if r["answerable"]]
    return {
        "questions": len(rows),
        "retrieval": ranking_metrics(ranks, cutoffs) if ranks else None,
        "answer": answer_metrics(rows) if with_answers else None,
    }


def _group_order(key: str, value: str) -> tuple:
    return (KINDS.index(value) if key == "kind" and value in KINDS else len(KINDS), value)


def metrics_of(rows: Sequence[dict], cutoffs: Iterable[int], with_answers: bool) -> dict:
    """The metrics object of `--json` for one configuration's rows."""
    cutoffs = sorted(set(cutoffs))
    overall = summarise(rows, cutoffs, with_answers)
    result = {
        "questions": overall["questions"],
        "retrieval": overall["retrieval"],
        "answer": overall["answer"],
        "latency_ms": latency_metrics(rows),
    }
    for key, name in (("lang", "by_lang"), ("kind", "by_kind")):
        values = sorted({r[key] for r in rows}, key=lambda v: _group_order(key, v))
        result[name] = {v: summarise([r for r in rows if r[key] == v], cutoffs, with_answers) for v in values}
    result["failed"] = [r["id"] for r in rows if r["failed"]]
    return result
