"""`rag bench`'s figures as Markdown: one table of the declared figures (harness/figures.py),
each beside the bare library's and against its target, then the KV-cache reuse, the TTFT grid
and the cold-start breakdown."""

from __future__ import annotations

from .figures import BY_KEY, FIGURES
from .reports import markdown_table


def _figure(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def run_sizes(r: dict) -> dict:
    """What the labels' {big}, {index_type} and {synthetic_chunks} stand for in this run."""
    return {
        "big": f"{r['large_chunks']:,}" if r.get("large_chunks") else "100,000",
        "index_type": r["settings"]["index_type"],
        "synthetic_chunks": r.get("index_chunks_synthetic") or "",
    }


def to_markdown(r: dict) -> str:
    """The figures as markdown tables: each with the raw library's figure and the target."""

    def target(key: str) -> list[str]:
        t = r["targets"].get(key)
        if not t:
            return ["", ""]
        return [t["target"], "–" if t["holds"] is None else "yes" if t["holds"] else "**no**"]

    def row(figure) -> list[str]:
        # the row's target is its own, else that of its ratio to the bare library
        targeted = figure.key if figure.target else figure.ratio if figure.ratio and BY_KEY[figure.ratio].target else ""
        return [
            figure.label(**sizes),
            _figure(r.get(figure.key)),
            _figure(r.get(figure.beside)) if figure.beside else "",
            _figure(r.get(figure.ratio)) if figure.ratio else "",
            *target(targeted),
        ]

    sizes = run_sizes(r)
    table = markdown_table(
        ["figure", "polyglot-rag", "raw library (same work, same run)", "ratio", "target", "holds"],
        [row(figure) for figure in FIGURES if figure.row],
    )
    reuse = r.get("prefix_reuse") or {}
    grid = r.get("ttft_grid") or []
    out = [
        "## Benchmark",
        "",
        f"{r['cpu_cores']} cores ({r['cpu_logical']} logical), {r['threads']} threads, load average "
        f"{r.get('load_average_before')} before and {r.get('load_average_after')} after; "
        f"embedder {r['models']['embedder']['id']}, LLM {r['models']['llm']['id']}; "
        f"{_figure(r.get('bench_seconds'))} s{' (--quick)' if r['plan']['quick'] else ''}.",
        "",
        table,
    ]
    if reuse:
        out += [
            "",
            f"KV-cache prefix reuse: the first question evaluated {_figure(reuse.get('first_question_evaluated'))} "
            f"of {_figure(reuse.get('first_question_prompt_tokens'))} prompt tokens; the next ones "
            f"{_figure(reuse.get('next_questions_evaluated_p50'))} of "
            f"{_figure(reuse.get('next_questions_prompt_tokens_p50'))} (p50), reusing "
            f"{_figure(reuse.get('next_questions_reused_p50'))} (system prompt: "
            f"{_figure(reuse.get('system_prompt_tokens'))} tokens).",
        ]
    if grid:
        out += [
            "",
            "TTFT by passages read (system prompt cached):",
            "",
            markdown_table(
                [
                    "passages",
                    "tokens each (max)",
                    "prompt tokens p50",
                    "evaluated p50",
                    "LLM TTFT p50 (ms)",
                    "question to first token p50 (ms)",
                ],
                [
                    [
                        str(g["passages"]),
                        str(g["passage_tokens"]),
                        _figure(g["prompt_tokens_p50"]),
                        _figure(g["evaluated_tokens_p50"]),
                        _figure(g["ttft_llm_ms_p50"]),
                        _figure(g["ttft_ms_p50"]),
                    ]
                    for g in grid
                ],
                right_from=0,
            ),
        ]
    breakdown = r.get("cold_start_breakdown_s") or {}
    if breakdown:
        out += [
            "",
            "Where a cold `ask` spends its time (each step in turn, one new process; s):",
            "",
            markdown_table(["step", "seconds"], [[name, _figure(value)] for name, value in breakdown.items()]),
        ]
    return "\n".join(out) + "\n"
