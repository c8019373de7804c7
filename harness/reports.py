"""Reports: Markdown tables (the one table writer of the harness), the evaluation report
and its charts, and the provenance of a run (the command and the code version)."""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Sequence
from pathlib import Path

from rag.citations import location
from rag.settings import PROJECT_ROOT, given_flags

from .gold import GoldItem, collapse, shorten
from .metrics import CUTOFFS, LOSSES, Configuration, answer_metrics, refused_below


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]], right_from: int = 1) -> str:
    """A Markdown table, padded so it also reads well as plain text; columns from `right_from` right-aligned."""
    cells = [list(map(str, headers))] + [list(map(str, row)) for row in rows]
    widths = [max(_width(row[i]) for row in cells) for i in range(len(headers))]

    def line(row):
        return "| " + " | ".join(_pad(cell, widths[i], i >= right_from) for i, cell in enumerate(row)) + " |"

    rule = (
        "|"
        + "|".join(("-" * (w + 1) + ":") if i >= right_from else ("-" * (w + 2)) for i, w in enumerate(widths))
        + "|"
    )
    return "\n".join([line(cells[0]), rule, *map(line, cells[1:])])


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, width: int, right: bool) -> str:
    space = " " * (width - _width(text))
    return space + text if right else text + space


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


def _retrieval_columns(cutoffs: Sequence[int]) -> list[str]:
    return [f"hit@{c}" for c in cutoffs] + ["mrr@10", "ndcg@10"]


def _label(column: str, k: int) -> str:
    names = {
        "mrr@10": "MRR@10",
        "ndcg@10": "nDCG@10",
        "accuracy": "accuracy",
        "copy_accuracy": "copy holds answer",
        "evidence_given": "evidence read",
        "citation_precision": "cit. precision",
        "citation_recall": "cit. recall",
        "refusal_unanswerable": "refusal (unans.)",
        "refusal_answerable": "answered (ans.)",
        "correct_when_answered": "correct when answered",
    }
    if column == f"hit@{k}" and k not in CUTOFFS:
        return f"hit@{k} (k)"
    return names.get(column, column)


ANSWER_COLUMNS = [
    "evidence_given",
    "accuracy",
    "copy_accuracy",
    "citation_precision",
    "citation_recall",
    "refusal_unanswerable",
    "refusal_answerable",
    "correct_when_answered",
]


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
    rows = [
        [c.label, str(m["questions"]), str((m["retrieval"] or {}).get("n", 0))] + _metric_cells(m, columns)
        for c, m in results
    ]
    table = markdown_table(headers, rows)
    if results[0][1]["answer"] is None:
        return table
    headers = ["configuration"] + [_label(c, k) for c in ANSWER_COLUMNS]
    rows = []
    for configuration, metrics in results:
        a = metrics["answer"]
        rows.append(
            [
                configuration.label,
                _share(a["evidence_given"], a["given_evidence"], a["answerable"]),
                _share(a["accuracy"], a["correct"], a["answerable"]),
                _share(a.get("copy_accuracy"), a.get("copy_correct", 0), a["answerable"]),
                _share(a["citation_precision"], a["supporting_citations"], a["citations"]),
                _share(a["citation_recall"], a["citing_evidence"], a["answerable"]),
                _share(a["refusal_unanswerable"], a["refused_unanswerable"], a["unanswerable"]),
                _share(a["refusal_answerable"], a["answered_answerable"], a["answerable"]),
                _share(a["correct_when_answered"], a["right_answers_given"], a["answers_given"]),
            ]
        )
    return table + "\n\n" + markdown_table(headers, rows)


def group_table(results: Sequence[tuple[Configuration, dict]], group: str, cutoffs: Sequence[int], k: int) -> str:
    """One row per language (or kind); with several configurations, their columns side by side."""
    with_answers = results[0][1]["answer"] is not None
    several = len(results) > 1
    if several:
        columns = ["hit@5", "mrr@10"] + (["accuracy", "refusal_unanswerable"] if with_answers else [])
    else:
        columns = (
            [f"hit@{c}" for c in cutoffs if c in (1, 5, 10) or c == k]
            + ["mrr@10"]
            + (["accuracy", "citation_recall", "refusal_unanswerable"] if with_answers else [])
        )
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
    headers = [
        "configuration",
        "retrieve p50",
        "retrieve p95",
        "first token p50",
        "first token p95",
        "total p50",
        "total p95",
    ]
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
    lines = [
        f"#### {row['id']} ({row['lang']}, {row['kind']}): {'; '.join(row['reasons'])}",
        "",
        f"- **Question:** {row['question']}",
    ]
    if row["answerable"]:
        where = ", ".join(f"¶{n}" for n in row["evidence_paragraphs"])
        lines.append(
            f"- **Expected:** {' / '.join(row['answers'])}, from {row['file']} {where}: "
            f"“{shorten(row['evidence'], 200)}”"
        )
        lines.append(f"- **Evidence rank:** {row['rank'] or 'not in the top ' + str(len(row['retrieved']))}")
    else:
        lines.append("- **Expected:** a refusal (the documents do not answer this)")
    if "context" in row:
        top = "; ".join(f"[{p['rank']}] {_passage(p)}" for p in row["retrieved"][:k])
        lines.append(f"- **Retrieved (top {k}):** {top}")
        lines.append(
            "- **The LLM read:** "
            + (
                "; ".join(f"[{p['rank']}] {_passage(p)}" for p in row["context"])
                or "nothing (refused before asking the LLM)"
            )
        )
    else:
        lines.append(
            f"- **Retrieved (top {k}):** " + "; ".join(f"[{p['rank']}] {_passage(p)}" for p in row["retrieved"][:k])
        )
    if "abstained" in row:
        if row.get("error"):
            lines.append(f"- **Answered:** error: {row['error']}")
        else:
            refused = " *(abstained)*" if row["abstained"] else ""
            lines.append(f"- **Answered:** {collapse(row['answer'] or '')}{refused}")
            if row["citations"]:
                lines.append(
                    "- **Cited:** "
                    + "; ".join(
                        f"[{c['n']}] {location(c['file'], c['paragraph'], c.get('page'), c.get('ocr', False))}"
                        + (" ✓" if c["supports"] else "")
                        for c in row["citations"]
                    )
                )
            if row.get("unsupported"):
                lines.append(
                    "- **Sentences the assistant dropped as unsupported:** "
                    + "; ".join(f"“{collapse(u)}”" for u in row["unsupported"])
                )
    return "\n".join(lines)


def _shown(path) -> str:
    """A path as short as possible: relative to the working folder when it lies inside it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _command(args) -> str:
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
        return subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), *command], capture_output=True, text=True, timeout=10, check=True
        ).stdout

    try:
        commit = git("rev-parse", "--short", "HEAD").strip()
        diff = git("diff", "HEAD", "--", "rag", "harness", "models")
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    if not diff:
        return commit
    return f"{commit} with uncommitted changes (diff sha256 {hashlib.sha256(diff.encode()).hexdigest()[:12]})"


def context_lines(results, items: Sequence[GoldItem], args) -> list[str]:
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
  **answered (ans.)**: share of answerable questions it did not refuse;
  **correct when answered**: share of the answers given (not refused, any question) that are correct."""


SWEEP = (0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)


def losses_table(results) -> str:
    """Where the answerable questions were won or lost, one column per configuration."""
    headers = ["answerable questions"] + [c.label for c, _ in results]
    rows = [
        [name]
        + [
            _share(
                _part(m["answer"]["lost"][key], m["answer"]["answerable"]),
                m["answer"]["lost"][key],
                m["answer"]["answerable"],
            )
            for _, m in results
        ]
        for key, name in LOSSES
    ]
    return markdown_table(headers, rows)


def _part(count: int, whole: int) -> float | None:
    return count / whole if whole else None


def answerable_sweep_table(results, rows_by_config: dict[str, list[dict]]) -> str:
    columns = ["accuracy", "refusal_unanswerable", "refusal_answerable", "correct_when_answered"]
    headers = ["configuration", "min answerable"] + [_label(c, 0) for c in columns]
    rows = []
    for configuration, _ in results:
        own = configuration.settings.min_answerable
        for threshold in sorted({own, *(t for t in SWEEP if t >= own)}):
            metrics = answer_metrics(refused_below(rows_by_config[configuration.label], threshold))
            rows.append(
                [configuration.label, f"{threshold:.2f}" + (" (run)" if threshold == own else "")]
                + [_fmt(metrics[c]) for c in columns]
            )
    return markdown_table(headers, rows)


def report_markdown(
    results,
    items: Sequence[GoldItem],
    rows_by_config: dict[str, list[dict]],
    args,
    cutoffs: Sequence[int],
    charts: Sequence[str],
) -> str:
    k = results[0][0].settings.k
    context = f"\n  **hit@{k} (k)**: within the k = {k} chunks retrieved for the answer." if k not in CUTOFFS else ""
    parts = [
        "# Evaluation report",
        "",
        *context_lines(results, items, args),
        "",
        f"Reproduce with: `{_command(args)}`",
        "",
        "## Summary",
        "",
        summary_table(results, cutoffs, k),
        "",
        DEFINITIONS.format(context=context),
        "",
        "## By language",
        "",
        group_table(results, "by_lang", cutoffs, k),
        "",
        "## By kind",
        "",
        group_table(results, "by_kind", cutoffs, k),
        "",
        "## Latency (ms)",
        "",
        latency_table(results),
        "",
        "Wall-clock times from the assistant's own timings, after the models are loaded; "
        "the machine is shared, so they vary from run to run (the quality numbers do not).",
        "",
    ]
    if not args.retrieve_only:
        parts += [
            "## Where answers are lost",
            "",
            losses_table(results),
            "",
            "Each answerable question in the first of these that holds, in the order an answer is made: "
            "the passages the LLM read (retrieval and the passage step), its choice to answer, the "
            "passage it answered from, the words it copied.",
            "",
            "## Answerability threshold",
            "",
            answerable_sweep_table(results, rows_by_config),
            "",
            "Each row: the run's answers with every question refused whose probability of being answerable "
            "(the LLM's own, of not choosing [0]) is below the threshold (`--min-answerable`); exact for "
            "thresholds at or above the run's own.",
            "",
        ]
    if charts:
        parts += ["## Charts", "", *[f"![{Path(c).stem.replace('_', ' ')}]({c})" for c in charts], ""]
    parts += ["## Failures", ""]
    for configuration, metrics in results:
        failed = [r for r in rows_by_config[configuration.label] if r["failed"]]
        heading = f"{len(failed)} of {metrics['questions']} questions failed"
        if len(results) > 1:
            parts += [f"### {configuration.label}: {heading}", ""]
        else:
            why = (
                f" (evidence outside the k = {k} chunks retrieved for the answer)."
                if args.retrieve_only
                else " (wrong answer, wrongly refused or wrongly answered)."
            )
            parts += [heading + why, ""]
        for row in failed:
            parts += [failure_markdown(row, k), ""]
    return "\n".join(parts).rstrip() + "\n"


def write_charts(results, out: Path) -> list[str]:
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

    stages = [
        (s, t)
        for s, t in (("retrieve", "retrieve"), ("first_token", "first token"), ("total", "total"))
        if any(m["latency_ms"][s] for _, m in results)
    ]
    figure, axes = plt.subplots(1, len(stages), figsize=(4.2 * len(stages), 3.8), squeeze=False)
    for axis, (stage, title) in zip(axes[0], stages):
        data = [
            [r["timings_ms"][stage] for r in m["_rows"] if stage in r.get("timings_ms", {})] or [0.0]
            for _, m in results
        ]
        axis.boxplot(data, showfliers=True)
        low, high = min(min(d) for d in data), max(max(d) for d in data)
        if low > 0 and high / low > 100:  # e.g. keyword search next to dense search
            axis.set_yscale("log")
        axis.set_xticks(
            range(1, len(results) + 1),
            [c.label for c, _ in results],
            rotation=20 if len(results) > 1 else 0,
            fontsize="small",
        )
        axis.set_title(f"{title} (ms)")
        axis.grid(axis="y", alpha=0.3)
    figure.suptitle("Latency per question")
    figure.tight_layout()
    figure.savefig(out / "latency.png", dpi=110)
    plt.close(figure)
    names.append("latency.png")
    return names


def rounded(value, digits: int = 4):
    """A JSON-ready copy with floats rounded and private keys (`_rows`) left out."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [rounded(v, digits) for v in value]
    return value
