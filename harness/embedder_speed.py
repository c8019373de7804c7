"""A question's embedding time, one question at a time as `ask` embeds it, for each embedder
given (catalogue folders or names), over the questions of a gold file; p50 and p95 in ms.

    python -m harness.embedder_speed models/multilingual-e5-small models/embeddinggemma-300m
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rag.embedding import load_embedder

from .metrics import percentile

GOLD = Path(__file__).resolve().parent.parent / "eval" / "gold.jsonl"


def question_ms(name_or_path: str, questions: list[str], threads: int, warm_up: int = 10) -> list[float]:
    embedder = load_embedder(name_or_path, threads)
    for question in questions[:warm_up]:
        embedder.encode_queries([question])
    times = []
    for question in questions:
        started = time.perf_counter()
        embedder.encode_queries([question])
        times.append((time.perf_counter() - started) * 1000)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("embedders", nargs="+")
    parser.add_argument("--gold", type=Path, default=GOLD)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    lines = args.gold.read_text(encoding="utf-8").splitlines()
    questions = [json.loads(line)["question"] for line in lines if line.strip()]
    for name in args.embedders:
        times = question_ms(name, questions, args.threads)
        print(
            f"{name}: p50 {percentile(times, 50):.1f} ms, p95 {percentile(times, 95):.1f} ms ({len(times)} questions)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
