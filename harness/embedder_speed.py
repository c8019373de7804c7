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


def question_timings(embedder, questions: list[str], warm_up: int = 10) -> dict[str, list[float] | None]:
    """ms per question: `encode_queries` (tokenizer, session, normalisation) as `ask` calls it,
    and, for an ONNX embedder, the bare `session.run` on the same question's token ids; the two
    take turns question by question, after a warm-up of both."""
    session = getattr(embedder, "session", None)
    feeds = (
        [next(iter(embedder.batches([q], embedder.query_prompt, 1)))[1] for q in questions]
        if session is not None
        else None
    )
    for n, question in enumerate(questions[:warm_up]):
        embedder.encode_queries([question])
        if feeds is not None:
            session.run(None, feeds[n])
    ours: list[float] = []
    bare: list[float] = []

    def pipeline(n: int) -> None:
        started = time.perf_counter()
        embedder.encode_queries([questions[n]])
        ours.append((time.perf_counter() - started) * 1000)

    def library(n: int) -> None:
        started = time.perf_counter()
        session.run(None, feeds[n])
        bare.append((time.perf_counter() - started) * 1000)

    for n in range(len(questions)):
        steps = (pipeline,) if feeds is None else (pipeline, library) if n % 2 == 0 else (library, pipeline)
        for step in steps:
            step(n)
    return {"question_ms": ours, "raw_question_ms": bare if feeds is not None else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("embedders", nargs="+")
    parser.add_argument("--gold", type=Path, default=GOLD)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    lines = args.gold.read_text(encoding="utf-8").splitlines()
    questions = [json.loads(line)["question"] for line in lines if line.strip()]
    for name in args.embedders:
        times = question_timings(load_embedder(name, args.threads), questions)
        line = f"{name}: p50 {percentile(times['question_ms'], 50):.1f} ms, p95 {percentile(times['question_ms'], 95):.1f} ms"
        if times["raw_question_ms"]:
            line += f"; bare session.run p50 {percentile(times['raw_question_ms'], 50):.1f} ms"
        print(f"{line} ({len(questions)} questions)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
