"""`rag eval`: score the assistant on gold question/answer pairs.

The gold file is validated first against the paragraphs of the documents folder being
evaluated (harness/gold.py). For each question the harness asks the assistant twice through
its public API: `ask(question, k=10, retrieve_only=True)` ranks chunks for the retrieval
metrics, and (unless --retrieve-only) `ask(question, k=K)` answers from the K chunks
retrieved, as a user would get it. Each answer is also checked for whether the passages the
LLM read (`Answer.passages`, else its hits) held the evidence, to tell retrieval from
generation. What the metrics mean: harness/metrics.py; the report: harness/reports.py.

Deterministic: questions run in gold-file order after a fixed warm-up, at temperature 0,
so the same index and models give the same numbers (timings excepted). Latency is timed
after the models are loaded.

Heavy libraries (the models, matplotlib, tqdm) are imported only inside `run`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from rag.cli import Command
from rag.errors import RagError
from rag.settings import RETRIEVAL_MODES, settings_from_args

from .gold import DEFAULT_GOLD, GoldItem, holds, load_gold, parse_ids, select
from .metrics import CUTOFFS, DEPTH, Configuration, metrics_of, score_question
from .reports import (
    code_version,
    context_lines,
    group_table,
    latency_table,
    report_markdown,
    rounded,
    summary_table,
    write_charts,
)

WARM_UP = "What do the documents say?"


# -- running ----------------------------------------------------------------------------------
def _progress(total: int, description: str, enabled: bool = True):
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=description,
        unit="q",
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=0.5,
        disable=not enabled,
    )


def check_index(assistant, items: Sequence[GoldItem]) -> None:
    """RagError if the assistant's index does not hold the gold evidence where the documents do."""
    settings = assistant.settings
    pieces: dict[str, list] = {}  # file -> its paragraph pieces in the index
    for item in items:
        if not item.answerable:
            continue
        if item.file not in pieces:
            pieces[item.file] = assistant.index.paragraphs_of(item.file)
        texts = [p.text for p in pieces[item.file] if p.number in item.evidence_paragraphs]
        if not texts or not (all(holds(text, item.evidence) for text in texts) or holds("".join(texts), item.evidence)):
            where = ", ".join(f"¶{number}" for number in item.evidence_paragraphs)
            raise RagError(
                f"the index in {settings.index_dir} does not match the documents in "
                f"{settings.docs_dir} ({item.file} {where} differs or is missing); "
                f"run `rag index --docs {settings.docs_dir} --index {settings.index_dir}`"
            )


def evaluate(
    configuration: Configuration, items: Sequence[GoldItem], retrieve_only: bool, progress: bool = True
) -> list[dict]:
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
        bar = _progress(
            len(items), f"{configuration.label}: {'retrieving' if retrieve_only else 'answering'}", enabled=progress
        )
        rows = []
        said: dict[str, str] = {}  # id -> what the assistant answered (the gold answer, retrieve-only)
        with bar:
            for item in items:
                item = _standalone(assistant, item, items, said)
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
                said[item.id] = row.get("answer") or (item.answers[0] if item.answers else "")
                rows.append({"config": configuration.label, **row})
                bar.update(1)
        return rows
    finally:
        del assistant
        gc.collect()


# Follow-ups made standalone in this process, by (the LLM and how it runs, earlier turn, question):
# a rewrite depends on nothing else (not on the retrieval mode, the index or the documents), so
# a --compare run rewrites each follow-up once instead of once per mode, and a run of retrieval
# alone whose follow-ups are all rewritten already does not load the LLM.
_REWRITES: dict[tuple, str] = {}


def _standalone(assistant, item: GoldItem, items: Sequence[GoldItem], said: dict[str, str]) -> GoldItem:
    """A follow-up asked as the chat asks it: after its earlier question and the answer given
    to it, made standalone by the Assistant; other items unchanged."""
    if item.follows is None:
        return item
    earlier = next(i for i in items if i.id == item.follows)
    turn = (earlier.question, said.get(earlier.id, ""))
    settings = assistant.settings
    llm = (settings.llm_url, settings.llm_path, settings.context_tokens, settings.threads)
    key = (llm, turn, item.question)
    if key not in _REWRITES:
        _REWRITES[key] = assistant.standalone_question([turn], item.question).standalone
    return dataclasses.replace(item, question=_REWRITES[key])


def configurations(base, compare: bool, llms: Sequence[Path] | None) -> list[Configuration]:
    modes = list(RETRIEVAL_MODES) if compare else [base.retrieval]
    if llms:
        from models.catalogue import find

        for path in llms:
            if find(str(path), "llm") is None and not Path(path).is_file():
                raise RagError(f"LLM file not found: {path}")
        names = [Path(p).name for p in llms]
        labels = [
            name if names.count(name) == 1 else f"{name} ({names[: i + 1].count(name)})" for i, name in enumerate(names)
        ]
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


# -- CLI ---------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Score the assistant on gold question/answer pairs: retrieval (hit@n, MRR, nDCG), "
        "answers (accuracy, citations, refusals) and latency, by language and kind."
    )
    parser.add_argument(
        "--gold", type=Path, default=DEFAULT_GOLD, help="gold JSONL file (default: eval/gold.jsonl of the project)"
    )
    parser.add_argument(
        "--retrieve-only",
        action="store_true",
        help="only score retrieval (the LLM only makes follow-up questions standalone)",
    )
    parser.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    parser.add_argument("--out", type=Path, metavar="DIR", help="write report.md, results.jsonl and PNG charts here")
    parser.add_argument(
        "--compare",
        action="store_true",
        help=f"evaluate every retrieval mode ({', '.join(RETRIEVAL_MODES)}) side by side",
    )
    parser.add_argument(
        "--llms",
        type=Path,
        nargs="+",
        metavar="NAME_OR_GGUF",
        help="evaluate each of these LLMs (catalogue names or GGUF files) with the same index and retrieval",
    )
    subset = parser.add_mutually_exclusive_group()
    subset.add_argument(
        "--sample", type=int, metavar="N", help="a fixed sample of N questions, spread evenly over the languages"
    )
    subset.add_argument(
        "--ids",
        nargs="+",
        metavar="ID",
        help="only these questions: ids, comma-separated ids, or @FILE with one id per line",
    )


def run(args: argparse.Namespace) -> int:
    if args.retrieve_only and args.llms:
        raise RagError("--llms compares answers; it cannot be combined with --retrieve-only")
    base = settings_from_args(args).replace(temperature=0.0)  # deterministic answers
    items = select(load_gold(args.gold, base.docs_dir), args.sample, parse_ids(args.ids) if args.ids else None)
    configs = configurations(base, args.compare, args.llms)
    args.code_version = code_version()  # before the long run, while the code is the code being run
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
        charts = write_charts(results, out)
        (out / "report.md").write_text(
            report_markdown(results, items, rows_by_config, args, cutoffs, charts), encoding="utf-8"
        )

    if args.json:
        objects = [{"label": c.label, "config": c.describe(), **rounded(m)} for c, m in results]
        header = {"gold": str(args.gold), "code": args.code_version}
        document = (
            {**header, **objects[0]}
            if len(objects) == 1
            else {**header, "questions": len(items), "configurations": objects}
        )
        print(json.dumps(document, ensure_ascii=False))
        return 0

    k = base.k
    print("\n".join(context_lines(results, items, args)))
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
