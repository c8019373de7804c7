"""`rag bench`'s figures, declared once (harness/figures.py): derived from the raw
measurements, rendered, targeted, and named the same in the README. Fast: no model runs; the
measurements are a synthetic record shaped like `run_bench`'s."""

from __future__ import annotations

import math
import re

import pytest

from harness import bench
from harness.bench_render import run_sizes, to_markdown
from harness.figures import BY_KEY, FIGURES
from rag.settings import Settings

from .conftest import ROOT


def timing(n: int, ours: float, bare: float) -> dict:
    return {
        "questions": n,
        "reps": 1,
        "retrieve_ms": [ours + i for i in range(n)],
        "raw_ms": [bare + i for i in range(n)],
        "raw_embed_ms": [bare - 2 + i for i in range(n)],
        "raw_search_ms": [1.0 + i / 10 for i in range(n)],
    }


def call(ttft_ms: float, evaluated: int) -> dict:
    return {
        "ttft_ms": ttft_ms,
        "pieces": 9,
        "text": "x",
        "perf": {"n_p_eval": evaluated, "t_p_eval_ms": evaluated * 8.0},
        "prompt_tokens": 560,
        "decode_tokens": 20,
        "decode_s": 2.5,
    }


def measurements() -> dict:
    """Every section of `run_bench`'s details, with round numbers."""
    indexing_runs = [{"pipeline_s": 3.0, "encode_inside_s": 2.5, "raw_encode_s": 4.0}] * 3
    questions = [
        {
            "question": f"q{i}",
            "warm_up": i == 0,
            "ttft_ms": 2000.0 + 100 * i,
            "timings_ms": {"retrieve": 12.0, "passages": 300.0},
            "abstained": False,
            "answer": "a",
            "llm": call(1800.0 + 100 * i, 596 if i == 0 else 250),
            "raw": call(1700.0 + 100 * i, 596 if i == 0 else 250),
        }
        for i in range(5)
    ]
    stores = {"faiss": [12.0, 13.0], "milvus": [40.0, 44.0]}
    return {
        "indexing": {
            "seeds": {"chunks": 94, "files": 5, "runs": indexing_runs},
            "synthetic": {"paragraphs": 5000, "chunks": 1657, "runs": indexing_runs[:1]},
            "batch_size": 32,
            "index_type": "flat",
        },
        "retrieval": timing(40, 12.0, 28.0),
        "milvus": {
            "seeds": {"chunks": 94, "write_s": 1.0, **stores},
            "large": {"chunks": 100_000, "write_s": 30.0, **stores},
        },
        "large": {
            "chunks": 100_000,
            "by_type": {
                "flat": {"write_s": 5.0, "load_s": 1.0, **timing(10, 52.0, 46.0)},
                "hnsw": {"write_s": 25.0, "load_s": 1.5, **timing(10, 32.0, 30.0)},
            },
            "ann_recall_at_10": 0.86,
        },
        "generation": {
            "questions": questions,
            "system_prompt_tokens": 255,
            "grid": [
                {
                    "passages": 3,
                    "passage_tokens": 96,
                    "prompt_tokens_p50": 560.0,
                    "evaluated_tokens_p50": 300.0,
                    "ttft_llm_ms_p50": 2500.0,
                    "ttft_ms_p50": 2900.0,
                }
            ],
        },
        "cold_start": {
            "runs": {
                "ask": [{"first_s": 9.0, "total_s": 12.0, "peak_rss_mb": 2200.0}],
                "bare_llm": [{"first_s": 7.2, "total_s": 9.0, "peak_rss_mb": 1950.0}],
                "retrieve_only": [{"first_s": 0.7, "total_s": 0.7, "peak_rss_mb": 226.0}],
            },
            "breakdown": {"LLM load (GGUF memory-mapped)": 1.44},
        },
        "ui": {"start_s": 12.0, "answer_s": 4.0, "peak_rss_mb": 2400.0},
        "ui_memory": {"questions": 100, "rss_mb": {"10": 2000.0, "100": 2100.0}},
        "embedders": {
            "question": "q0",
            "batch_size": 32,
            "by_embedder": {
                "e5-small": embedder_runs((8.0, 10.0), (2.0, 2.5), (12.0, 13.0, 14.0), (10.0, 11.0, 12.0), 2090.0),
                "gemma-300m": embedder_runs((20.0, 30.0), (10.0, 12.0), (50.0, 54.0, 60.0), (45.0, 50.0, 55.0), 2457.0),
            },
        },
        "bench_seconds": 280.0,
    }


def embedder_runs(index_s, raw_encode_s, question_ms, raw_question_ms, ask_rss_mb) -> dict:
    """One embedder's measurements in the embedders section, 94 chunks."""
    return {
        "folder": "models/x",
        "id": "x",
        "dim": 384,
        "chunks": 94,
        "questions": len(question_ms),
        "index_runs": [{"total_s": s, "peak_rss_mb": 500.0 + s} for s in index_s],
        "raw_encode_s": list(raw_encode_s),
        "question_ms": list(question_ms),
        "raw_question_ms": list(raw_question_ms),
        "ask": {"first_s": 9.0, "total_s": 12.0, "peak_rss_mb": ask_rss_mb, "answer": "a"},
    }


def summarise(details: dict) -> dict:
    models = {"embedder": {"id": "e5"}, "llm": {"id": "qwen"}}
    return bench.summarise(details, Settings(), bench.Plan(), models, {})


def table_rows(markdown: str) -> list[list[str]]:
    """The cells of every Markdown table row (rules left out), stripped of their padding."""
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in markdown.splitlines()
        if line.startswith("|") and not set(line) <= set("|-: ")
    ]


def test_declarations_are_whole_and_refer_to_declared_figures():
    assert len(BY_KEY) == len(FIGURES), "a key is declared twice"
    for figure in FIGURES:
        assert figure.name and figure.how, figure.key
        for other in (figure.beside, figure.ratio):
            assert other is None or other in BY_KEY, (figure.key, other)
        if figure.target is not None:
            assert figure.target[0] in ("<=", ">="), figure.key


def test_every_declared_figure_is_derived_from_the_measurements():
    results = summarise(measurements())
    for figure in FIGURES:
        value = results[figure.key]
        assert isinstance(value, (int, float)) and math.isfinite(value), (figure.key, value)
    # a few by hand: each is the measurement it says it is
    assert results["index_chunks_per_s"] == pytest.approx(94 / 3.0, abs=1e-4)
    assert results["index_overhead_ratio"] == pytest.approx(0.75)
    assert results["decode_ratio_vs_raw"] == pytest.approx(1.0)
    assert results["cold_start_ratio_vs_bare_llm"] == pytest.approx(9.0 / 7.2, abs=1e-4)
    assert results["retrieve_ms_p50_milvus"] == pytest.approx(42.0)
    assert results["prefix_reuse"]["next_questions_reused_p50"] == 310
    assert results["targets"]["peak_rss_mb"] == {"value": 2200.0, "target": "<= 3000", "holds": True}
    assert results["targets"]["cold_start_ratio_vs_bare_llm"]["holds"] is True
    assert results["ui_memory_growth"] == pytest.approx(1.05)
    assert results["ui_memory_questions"] == [10, 100]


def test_a_skipped_section_leaves_its_figures_null_and_the_others_measured():
    details = measurements()
    del details["large"], details["milvus"]["large"]
    results = summarise(details)
    assert results["retrieve_ms_p50_100k"] is None and results["retrieve_ms_p50_100k_milvus"] is None
    assert results["targets"]["retrieve_ms_p50_100k"]["holds"] is None
    assert results["retrieve_ms_p50"] is not None and results["retrieve_ms_p50_milvus"] is not None
    rows = {cells[0]: cells[1:] for cells in table_rows(to_markdown(results))}
    assert rows["Retrieve, 100,000 chunks, default index (flat), p50 (ms)"] == ["–", "–", "", "<= 60", "–"]


def test_markdown_has_a_row_per_declared_row_with_its_comparison_and_target():
    results = summarise(measurements())
    rows = {cells[0]: cells[1:] for cells in table_rows(to_markdown(results))}
    sizes = run_sizes(results)
    for figure in FIGURES:
        if figure.row:
            assert figure.label(**sizes) in rows, figure.key
    assert rows["Decode (tokens/s)"] == ["8.000", "8.000", "1.000", ">= 0.95", "yes"]
    assert rows["Peak RSS `ask` (MB)"] == ["2,200", "1,950", "", "<= 3000", "yes"]
    assert rows["Indexing, synthetic 1657 chunks (chunks/s)"][:2] == ["552.3", "414.2"]
    details = measurements()
    details["ui"]["peak_rss_mb"] = 2600.0
    rows = {cells[0]: cells[1:] for cells in table_rows(to_markdown(summarise(details)))}
    assert rows["Peak RSS `rag ui` after one question (MB)"][-2:] == ["<= 2560", "**no**"]
    # the ui_memory row: after all, after a tenth beside it, their ratio against its target
    assert rows["Peak RSS `rag ui` after many questions and two uploads (MB)"] == [
        "2,100",
        "2,000",
        "1.050",
        "<= 1.1",
        "yes",
    ]


def test_the_readme_names_bench_figures_and_targets_as_declared():
    """The README's table of current figures: each `rag bench` row is a declared figure, with
    its declared target."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Current figures", 1)[1].split("\n## ", 1)[0]
    labels = {f.label(big="100,000", index_type="flat", synthetic_chunks="5,000"): f for f in FIGURES}
    bench_rows = [cells for cells in table_rows(section) if cells[-1].startswith("`rag bench")]
    assert len(bench_rows) >= 5
    for label, _now, target, _command in bench_rows:
        assert label in labels, f"README row {label!r} is no figure declared in harness/figures.py"
        figure = labels[label]
        assert target == (figure.target_text() if figure.target else ""), label
        assert re.search(r"\d", _now), label
