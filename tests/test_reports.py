"""harness/reports.py: the one Markdown table writer (aligned as plain text, CJK counted as two
columns), the threshold sweep table and the JSON rounding. Fast."""

from __future__ import annotations

from types import SimpleNamespace

from harness.reports import answerable_sweep_table, markdown_table, rounded

from .test_bench_figures import table_rows
from .test_metrics import ROWS


def test_a_table_lines_up_as_plain_text_with_wide_characters_counted_twice():
    table = markdown_table(["name", "value"], [["中文", "1"], ["english", "22.5"]])
    lines = table.splitlines()
    assert lines[1] == "|---------|------:|"  # the second column right-aligned
    assert lines[2] == "| 中文    |     1 |"  # 中文 takes four columns of a terminal
    assert lines[3] == "| english |  22.5 |"
    assert table_rows(table) == [["name", "value"], ["中文", "1"], ["english", "22.5"]]


def test_the_sweep_starts_at_the_runs_own_threshold_and_rescores_each_step():
    configuration = SimpleNamespace(label="qwen", settings=SimpleNamespace(min_answerable=0.5))
    rows = {cells[1]: cells[2:] for cells in table_rows(answerable_sweep_table([(configuration, {})], {"qwen": ROWS}))}
    assert list(rows)[1:] == ["0.50 (run)", "0.60", "0.70", "0.80", "0.85", "0.90", "0.95"]
    # at 0.8 the unanswerable q5 (0.7) is refused too, and so is the answered q2 (0.6)
    assert rows["0.80"] == ["0.333", "1.000", "0.333", "1.000"]


def test_rounding_for_json_rounds_floats_and_drops_private_keys():
    assert rounded({"a": 1.234567, "_rows": [1], "b": [2.0000001, {"c": None}]}) == {
        "a": 1.2346,
        "b": [2.0, {"c": None}],
    }
