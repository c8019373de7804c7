"""Answer figures of one `rag eval` run, per split of the gold, at several answerability
thresholds: the run is made once with RAG_MIN_ANSWERABLE=0 over dev and test together, a
threshold is chosen on dev, and test is read at that threshold.

    python -m harness.splits RESULTS.jsonl --split dev=eval/public/dev.jsonl --split test=eval/public/test.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .metrics import answer_metrics

THRESHOLDS = (0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9)


def at_threshold(row: dict, threshold: float) -> dict:
    """The row as a run with --min-answerable `threshold` would have scored it."""
    probability = row.get("answerable_probability")
    if row.get("abstained") or probability is None or probability >= threshold:
        return row
    refused = dict(row, abstained=True, citations=[])
    if row["answerable"]:
        refused.update(correct=False, cites_evidence=False)
    return refused


def figures(rows: list[dict]) -> dict:
    m = answer_metrics(rows)
    cross = [r for r in rows if r["answerable"] and r["kind"] == "cross"]
    return {
        "n": m["n"],
        "accuracy": m["accuracy"],
        "right when answered": _right(rows),
        "answerable refused": 1 - m["refusal_answerable"],
        "unanswerable refused": m["refusal_unanswerable"],
        "cross-language accuracy": sum(bool(r["correct"]) for r in cross) / len(cross) if cross else float("nan"),
    }


def _right(rows: list[dict]) -> float:
    given = [r for r in rows if not r.get("abstained") and "error" not in r]
    return sum(bool(r["correct"]) for r in given) / len(given) if given else float("nan")


def table(rows: list[dict], splits: dict[str, set[str]]) -> str:
    names = [
        "n",
        "accuracy",
        "right when answered",
        "answerable refused",
        "unanswerable refused",
        "cross-language accuracy",
    ]
    lines = ["| split | min answerable | " + " | ".join(names) + " |", "|" + "---|" * (len(names) + 2)]
    for name, ids in splits.items():
        chosen = [r for r in rows if r["id"] in ids]
        for threshold in THRESHOLDS:
            values = figures([at_threshold(r, threshold) for r in chosen])
            cells = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in values.values()]
            lines.append(f"| {name} | {threshold:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="results.jsonl of a rag eval run")
    parser.add_argument("--split", action="append", default=[], metavar="NAME=GOLD.jsonl")
    args = parser.parse_args(argv)
    rows = [json.loads(line) for line in args.results.read_text(encoding="utf-8").splitlines() if line.strip()]
    splits = {}
    for spec in args.split or [f"all={args.results}"]:
        name, _, gold = spec.partition("=")
        splits[name] = {json.loads(line)["id"] for line in Path(gold).read_text(encoding="utf-8").splitlines() if line}
    print(table(rows, splits))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
