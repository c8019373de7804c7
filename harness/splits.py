"""Answer figures of one `rag eval` run, per split of the gold, with each refusal gate swept:
the run is made once with every gate open (RAG_MIN_SIMILARITY=-1 RAG_MIN_ANSWERABLE=0 RAG_MIN_CONFIDENCE=0
RAG_MIN_COPIED=0 RAG_MIN_TRANSLATED=0) over dev and test together, thresholds are chosen on
dev, and test is read at them.

    python -m harness.splits RESULTS.jsonl --split dev=eval/public/dev.jsonl --split test=eval/public/test.jsonl \\
        [--at answerable_probability=0.5 --at similarity=0.78]

Each gate is swept with the others at the `--at` values (default: the settings' defaults).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rag.settings import Settings

from .metrics import LOSSES, answer_matches, answer_metrics, refused_below

# The recorded signal of each gate, the setting it stands for, and the thresholds swept.
GATES = {
    "similarity": ("min_similarity", (-1.0, 0.7, 0.75, 0.78, 0.8, 0.82, 0.84)),
    "answerable_probability": ("min_answerable", (0.0, 0.3, 0.5, 0.6, 0.7, 0.75, 0.8, 0.9)),
    "confidence": ("min_confidence", (0.0, 0.8, 0.9, 0.909, 0.95, 0.98, 0.99)),
    "copy_probability": ("min_copied", (0.0, 0.1, 0.2, 0.3, 0.5)),
}
NAMES = (
    "n",
    "accuracy",
    "copy holds answer",
    "right when answered",
    "answerable refused",
    "unanswerable refused",
    "cross-language accuracy",
)


def gated(rows: list[dict], thresholds: dict[str, float]) -> list[dict]:
    """The rows as a run with these gate thresholds would have scored them."""
    for signal, threshold in thresholds.items():
        rows = refused_below(rows, threshold, signal)
    return rows


def figures(rows: list[dict]) -> dict:
    m = answer_metrics(rows)
    cross = [r for r in rows if r["answerable"] and r["kind"] == "cross"]
    return {
        "n": m["n"],
        "accuracy": m["accuracy"],
        "copy holds answer": m["copy_accuracy"],
        "right when answered": m["correct_when_answered"],
        "answerable refused": 1 - m["refusal_answerable"],
        "unanswerable refused": m["refusal_unanswerable"],
        "cross-language accuracy": sum(bool(r["correct"]) for r in cross) / len(cross) if cross else float("nan"),
    }


def table(rows: list[dict], splits: dict[str, set[str]], at: dict[str, float]) -> str:
    lines = [
        "| split | gate | threshold | " + " | ".join(NAMES) + " |",
        "|" + "---|" * (len(NAMES) + 3),
    ]
    for name, ids in splits.items():
        chosen = [r for r in rows if r["id"] in ids]
        for signal, (setting, thresholds) in GATES.items():
            for threshold in thresholds:
                values = figures(gated(chosen, {**at, signal: threshold}))
                cells = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in values.values()]
                lines.append(f"| {name} | {setting} | {threshold:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="results.jsonl of a rag eval run")
    parser.add_argument("--split", action="append", default=[], metavar="NAME=GOLD.jsonl")
    parser.add_argument("--at", action="append", default=[], metavar="SIGNAL=THRESHOLD")
    args = parser.parse_args(argv)
    rows = [json.loads(line) for line in args.results.read_text(encoding="utf-8").splitlines() if line.strip()]
    splits = {}
    for spec in args.split or [f"all={args.results}"]:
        name, _, gold = spec.partition("=")
        splits[name] = {json.loads(line)["id"] for line in Path(gold).read_text(encoding="utf-8").splitlines() if line}
    defaults = Settings()
    at = {signal: getattr(defaults, setting) for signal, (setting, _) in GATES.items()}
    for spec in args.at:
        signal, _, value = spec.partition("=")
        if signal not in GATES:
            parser.error(f"unknown gate {signal!r}; one of {', '.join(GATES)}")
        at[signal] = float(value)
    print(table(rows, splits, at))
    print()
    print(losses(rows, splits, at))
    print()
    print(translations(rows, splits))
    return 0


# Thresholds of min_translated swept: below one, the copy is shown without its translation.
TRANSLATION_THRESHOLDS = (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def translation_of(row: dict) -> str | None:
    """The translation shown beside the copy (read from the answer's text in older results)."""
    if "translation" in row:
        return row["translation"]
    copied, answer = row.get("copied"), row.get("answer") or ""
    tail = f" («{copied}» [1])"
    return answer[: -len(tail)] if copied and answer.endswith(tail) else None


def translations(rows: list[dict], splits: dict[str, set[str]]) -> str:
    """Translations of right copies, per split and min_translated: how many are shown and hold an
    accepted answer (right) or not (wrong), and how many right ones the threshold hides. Only
    copies that hold the answer count: the question is whether the translation says the same."""
    lines = [
        "| split | min translated | shown right | shown wrong | right hidden | wrong hidden |",
        "|---|---|---|---|---|---|",
    ]
    for name, ids in splits.items():
        judged = []
        for row in rows:
            translation = translation_of(row)
            if row["id"] in ids and row["answerable"] and row.get("copy_correct") and translation:
                judged.append((row.get("translation_probability"), answer_matches(translation, row["answers"])))
        for threshold in TRANSLATION_THRESHOLDS:
            shown = [right for p, right in judged if p is None or p >= threshold]
            hidden = [right for p, right in judged if p is not None and p < threshold]
            lines.append(
                f"| {name} | {threshold:g} | {sum(shown)} | {len(shown) - sum(shown)} | {sum(hidden)} | "
                f"{len(hidden) - sum(hidden)} |"
            )
    return "\n".join(lines)


def losses(rows: list[dict], splits: dict[str, set[str]], at: dict[str, float]) -> str:
    """Where each split's answerable questions were lost, with the gates at `at`."""
    lines = ["| split | " + " | ".join(name for _, name in LOSSES) + " |", "|" + "---|" * (len(LOSSES) + 1)]
    for name, ids in splits.items():
        lost = answer_metrics(gated([r for r in rows if r["id"] in ids], at))["lost"]
        lines.append(f"| {name} | " + " | ".join(str(lost[key]) for key, _ in LOSSES) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
