"""The evaluation harness: metrics computed by hand, gold validation, reports, and the CI gate.

Real models and real files throughout. The gate tests run `rag eval` through the CLI entry
point on the session's temporary index of the seeds. Their floors come from issue 3:
raise them as quality improves, never lower them to make a change pass.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest

from harness.evaluation import check_index
from harness.gold import GoldItem, load_gold, parse_ids, sample, select
from harness.metrics import (
    answer_matches,
    citation_supports,
    contains_answer,
    first_relevant_rank,
    normalise_answer,
    percentile,
    ranking_metrics,
    score_question,
)
from models.catalogue import FAST_LLM, find
from rag.chunking import Chunk
from rag.cli import rag_main
from rag.errors import RagError
from rag.retrieval import Hit
from rag.settings import MODELS_DIR

from .conftest import run_main

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
GOLD = ROOT / "eval" / "gold.jsonl"
CI_SAMPLE = ROOT / "eval" / "ci-sample.txt"

# The CI gate. Floors: just under what the default models measure today (docs/evaluation.md),
# so a regression fails; raise them as quality improves, never lower them.
# Targets: what issue 3 asks for and the default models do not reach yet; the tests
# holding them are strict xfails, so reaching a target fails loudly until its floor is
# raised to it.
FLOOR_HIT_AT_5, TARGET_HIT_AT_5 = 0.85, 0.9
# The gold set grew (issue 12) with harder questions; FLOOR_HIT_AT_5 still holds on the
# questions it was set on (q001-q101), and the whole set has its own floor.
FIRST_GOLD = [f"q{n:03d}" for n in range(1, 102)]
FLOOR_HIT_AT_5_ALL = 0.83
# Issue 3's accuracy target (0.5) is met on the fixed sample since English and Indonesian are told
# apart by lingua (5 of its 10 answerable questions right): the floor is raised to it.
FLOOR_ANSWER_ACCURACY = 0.5
FLOOR_REFUSAL_ACCURACY = 0.5  # also issue 3's target, for answerable and unanswerable questions

FILE = "000_25ef5ea761165839.txt"
EVIDENCE = "yang ikut mendirikan Segment sebelum bergabung dengan OpenAI"


def _eval(capsys, *args: str) -> tuple[int, str, str]:
    code = rag_main(["eval", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _on_seeds(index: Path) -> list[str]:
    return ["--docs", str(SEEDS), "--index", str(index)]


def _hit(file: str, text: str, first: int = 1, last: int = 1) -> Hit:
    return Hit(Chunk(file, first, last, text, "id", first, last), 0.5)


# -- metrics, by hand ---------------------------------------------------------------------------
def test_ranking_metrics_of_ranks_1_3_none():
    metrics = ranking_metrics([1, 3, None])
    assert metrics["n"] == 3
    assert metrics["hit@1"] == pytest.approx(1 / 3)
    assert metrics["hit@3"] == pytest.approx(2 / 3)
    assert metrics["hit@5"] == pytest.approx(2 / 3)
    assert metrics["hit@10"] == pytest.approx(2 / 3)
    assert metrics["mrr@10"] == pytest.approx((1 + 1 / 3 + 0) / 3)  # 4/9
    # One relevant item: nDCG = 1 / log2(rank + 1); rank 3 gives 1/log2(4) = 0.5.
    assert metrics["ndcg@10"] == pytest.approx((1 + 0.5 + 0) / 3)


def test_ranking_metrics_ignore_ranks_beyond_the_depth():
    metrics = ranking_metrics([2, 11], cutoffs=[1, 4, 10], depth=10)
    assert metrics["hit@1"] == 0
    assert metrics["hit@4"] == pytest.approx(0.5)
    assert metrics["hit@10"] == pytest.approx(0.5)
    assert metrics["mrr@10"] == pytest.approx(0.5 / 2)
    assert metrics["ndcg@10"] == pytest.approx(1 / math.log2(3) / 2)
    assert ranking_metrics([]) == {"n": 0}


def test_relevant_chunk_is_the_first_from_the_gold_file_containing_the_evidence():
    hits = [
        _hit("other.txt", "x yang ikut mendirikan Segment sebelum bergabung dengan OpenAI"),  # wrong file
        _hit(FILE, "Calvin French-Owen, yang ikut mendirikan Segment"),  # only part of it
        _hit(FILE, "French-Owen, yang ikut\nmendirikan  Segment sebelum bergabung dengan OpenAI selama", 1, 2),
        _hit(FILE, EVIDENCE),
    ]
    assert first_relevant_rank(hits, FILE, EVIDENCE) == 3  # whitespace differences do not matter
    assert first_relevant_rank(hits[:2], FILE, EVIDENCE) is None


@pytest.mark.parametrize(
    "answer, accepted, expected",
    [
        ("Codex menghasilkan 830.000 pull request [1].", ["830000"], True),
        ("830,000 PRs", ["830000"], True),
        ("８３０，０００개의 PR", ["830000"], True),  # full-width digits and comma (NFKC)
        ("He co-founded SEGMENT.", ["Segment"], True),  # case folding
        ("Bangun pukul 5:30 pagi", ["5:30", "5.30"], True),
        ("5.30 pagi", ["5:30", "5.30"], True),  # a decimal-looking time is not a thousands separator
        ("Codex는 7주 만에 만들어졌습니다 [2].", ["7"], True),
        ("It took 17 weeks.", ["7"], False),  # a number matches whole numbers only
        ("In 2017.", ["7"], False),
        ("7.8만 PR", ["7"], False),  # 7.8 is not 7
        ("See passage [7].", ["7"], False),  # citation markers are not answers
        ("", ["7"], False),
        (None, ["7"], False),
    ],
)
def test_answer_accuracy_normalisation(answer, accepted, expected):
    assert answer_matches(answer, accepted) is expected


def test_normalise_answer():
    assert normalise_answer("  Lebih dari 3.000\nKaryawan ") == "lebih dari 3000 karyawan"
    assert normalise_answer("1,000,000") == "1000000"
    assert normalise_answer("7.8") == "7.8"
    assert contains_answer("9月25日辞职", "9月25日")


def test_citation_precision_rule():
    paragraph = "Calvin French-Owen, yang ikut mendirikan Segment sebelum bergabung dengan OpenAI selama 14 bulan."
    assert citation_supports(FILE, paragraph, FILE, EVIDENCE)  # contains the evidence
    assert citation_supports("copy.txt", paragraph, FILE, EVIDENCE)  # contains it, even elsewhere
    half = "Ia ikut mendirikan Segment sebelum pindah."  # "ikut mendirikan Segment sebelum " is half of it
    assert citation_supports(FILE, half, FILE, EVIDENCE)  # overlaps it, in the gold file
    assert not citation_supports("other.txt", half, FILE, EVIDENCE)  # overlap only counts in the gold file
    assert not citation_supports(FILE, "Segment didirikan pada 2011.", FILE, EVIDENCE)


def test_a_report_cites_the_page_of_a_pdf_paragraph():
    """A failed question's report names a cited PDF paragraph by page, as `ask` does."""
    from harness.reports import failure_markdown
    from rag.assistant import Answer
    from rag.citations import Citation

    item = GoldItem("x", "How many ships?", "en", "fact", "report.pdf", "Ships were counted.", ("12",), 1, (12,))
    cited = Citation(1, "report.pdf", 12, "Ships were counted.", "Ships were counted.", page=3)
    answer = Answer(item.question, "Many [1]", False, [cited], [], "en")
    row = score_question(item, [], answer, k=3)
    assert row["citations"][0]["page"] == 3
    assert "[1] report.pdf p.3 ¶12 ✓" in failure_markdown(row, 3)


def test_a_translation_alone_does_not_make_an_answer_grounded():
    from rag.assistant import Answer

    item = GoldItem("x", "몇 척인가요?", "ko", "cross", "report.pdf", "Ships were counted.", ("12",), 1, (12,))
    free = Answer(item.question, "12척 («many» [1])", False, [], [], "ko", copied="many", translation="12척")
    assert score_question(item, [], free, k=3)["correct"] and not score_question(item, [], free, k=3)["copy_correct"]
    copied = Answer(item.question, "12척 («12 ships» [1])", False, [], [], "ko", copied="12 ships", translation="12척")
    assert score_question(item, [], copied, k=3)["copy_correct"]


def test_a_follow_up_is_rewritten_once_per_llm_and_earlier_turn(tmp_path):
    """Retrieval modes side by side (--compare) ask the same follow-up after the same turn: the
    LLM rewrites it once; another LLM, or another answer before it, is asked again."""
    from types import SimpleNamespace

    from harness.evaluation import _standalone
    from rag.settings import load_settings

    first = GoldItem("a", "Who founded Segment?", "en", "fact", None, None, ("Calvin",), 1)
    follow = GoldItem("b", "When did he leave?", "en", "fact", None, None, ("2024",), 2, follows="a")
    asked = []

    def assistant(llm: str):
        def rewrite(history, question):
            asked.append((llm, history[0][1]))
            return SimpleNamespace(standalone=f"{question} ({llm}, after {history[0][1]})")

        return SimpleNamespace(settings=load_settings(environ={}, llm=tmp_path / llm), standalone_question=rewrite)

    modes = [_standalone(assistant("one.gguf"), follow, [first, follow], {"a": "Calvin"}) for _ in range(3)]
    assert asked == [("one.gguf", "Calvin")] and len(set(modes)) == 1
    assert _standalone(assistant("one.gguf"), first, [first, follow], {}) is first  # not a follow-up
    _standalone(assistant("two.gguf"), follow, [first, follow], {"a": "Calvin"})
    _standalone(assistant("one.gguf"), follow, [first, follow], {"a": "Segment's founder"})
    assert asked[1:] == [("two.gguf", "Calvin"), ("one.gguf", "Segment's founder")]


def test_percentiles_interpolate_linearly():
    assert percentile([4, 1, 3, 2], 50) == pytest.approx(2.5)
    assert percentile(list(range(1, 21)), 95) == pytest.approx(19.05)
    assert percentile([7.0], 95) == 7.0
    assert percentile([], 50) is None


# -- the gold file and subsets ----------------------------------------------------------------
def test_gold_set_meets_the_issue():
    items = load_gold(GOLD, SEEDS)
    assert len(items) >= 60
    kinds = Counter(i.kind for i in items)
    assert kinds["cross"] >= len(items) / 3 and kinds["number"] >= 10 and kinds["unanswerable"] >= 6
    assert {"en", "ko", "zh", "id"} <= {i.lang for i in items}
    assert {i.file for i in items if i.answerable} == {p.name for p in SEEDS.glob("*.txt")}
    assert all(i.evidence_paragraphs for i in items if i.answerable)
    assert all(not i.answers for i in items if not i.answerable)


def test_ci_sample_is_fixed_at_3_per_language_with_2_unanswerable():
    ids = parse_ids([f"@{CI_SAMPLE}"])
    items = select(load_gold(GOLD, SEEDS), ids=ids)
    assert len(items) == len(ids) == 12
    assert Counter(i.lang for i in items) == {"en": 3, "ko": 3, "zh": 3, "id": 3}
    assert sum(not i.answerable for i in items) == 2


def test_sample_is_deterministic_and_spread_over_languages():
    items = load_gold(GOLD, SEEDS)
    chosen = sample(items, 8)
    assert {i.id for i in chosen} == {i.id for i in sample(list(reversed(items)), 8)}  # not the file's order
    assert Counter(i.lang for i in chosen) == {"en": 2, "ko": 2, "zh": 2, "id": 2}
    assert [i.id for i in chosen] == sorted(i.id for i in chosen)  # gold-file order


def _write_gold(path: Path, rows: list) -> Path:
    path.write_text(
        "\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8"
    )
    return path


GOOD = {
    "id": "g1",
    "question": "Perusahaan apa yang didirikan French-Owen?",
    "lang": "id",
    "file": FILE,
    "evidence": EVIDENCE,
    "answers": ["Segment"],
    "kind": "fact",
}


@pytest.mark.parametrize(
    "bad, message",
    [
        ({k: v for k, v in {**GOOD, "id": "g2"}.items() if k != "answers"}, "line 2: missing key 'answers'"),
        (
            {**GOOD, "id": "g2", "evidence": "mendirikan Google sebelum bergabung"},
            f'line 2: evidence not found in any paragraph of {FILE}: "mendirikan Google sebelum bergabung"',
        ),
        ({**GOOD, "id": "g2", "file": "nope.txt"}, "line 2: file 'nope.txt' is not in the documents folder"),
        ({**GOOD, "id": "g2", "kind": "trivia"}, "line 2: kind must be one of fact, number, cross, unanswerable"),
        ({**GOOD, "id": "g1"}, "line 2: duplicate id 'g1' (first on line 1)"),
        ('{"id": "g2", "question": ', "line 2: not valid JSON"),
    ],
)
def test_bad_gold_line_is_named_in_one_line_and_exits_1(tmp_path, capsys, bad, message):
    gold = _write_gold(tmp_path / "gold.jsonl", [GOOD, bad])
    code, out, err = _eval(capsys, "--gold", str(gold), "--retrieve-only", *_on_seeds(tmp_path / "index"))
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("rag: error: ")
    assert f"{gold}: 1 invalid line: {message}" in err
    assert not (tmp_path / "index").exists()  # rejected before any model or index was touched


def test_every_bad_line_is_reported(tmp_path, capsys):
    missing = {k: v for k, v in GOOD.items() if k not in ("evidence", "kind")}
    gold = _write_gold(
        tmp_path / "gold.jsonl", [GOOD, {**missing, "id": "g2"}, {**GOOD, "id": "g3", "evidence": "xyz"}]
    )
    code, _, err = _eval(capsys, "--gold", str(gold), *_on_seeds(tmp_path / "index"))
    assert code == 1 and err.count("\n") == 1
    assert "2 invalid lines: line 2: missing keys 'evidence', 'kind'; line 3: evidence not found" in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--gold", "no/such/gold.jsonl"], "gold file not found: no/such/gold.jsonl"),
        (["--ids", "q001", "q999"], "unknown gold ids: q999"),
        (["--llms", "no/such/model.gguf"], "LLM file not found: no/such/model.gguf"),
    ],
)
def test_bad_arguments_exit_1_with_one_line(tmp_path, capsys, args, message):
    code, out, err = _eval(capsys, *args, *_on_seeds(tmp_path / "index"))
    assert code == 1 and out == ""
    assert err == f"rag: error: {message}\n"


def test_stale_index_is_refused(assistant):
    item = GoldItem("x", "Perusahaan apa?", "id", "fact", FILE, EVIDENCE, ("Segment",), 1, (1,))
    check_index(assistant, [item])
    with pytest.raises(RagError, match="does not match the documents"):
        check_index(assistant, [GoldItem(**{**item.__dict__, "evidence_paragraphs": (2,)})])


# -- reports -----------------------------------------------------------------------------------
def test_retrieve_only_is_deterministic(seeds_index, capsys):
    runs = []
    for _ in range(2):
        code, out, _ = _eval(capsys, "--retrieve-only", "--json", "--sample", "8", *_on_seeds(seeds_index))
        assert code == 0
        metrics = json.loads(out)
        runs.append({key: metrics[key] for key in ("retrieval", "by_lang", "by_kind", "failed")})
        assert set(metrics) >= {"retrieval", "answer", "latency_ms", "by_lang", "by_kind"}
    assert runs[0] == runs[1]
    assert runs[0]["retrieval"]["n"] == sum(i.answerable for i in sample(load_gold(GOLD, SEEDS), 8))


def test_compare_writes_a_readable_report(seeds_index, tmp_path, capsys):
    out_dir = tmp_path / "report"
    ids = ["q001", "q037", "q063", "q093"]
    code, out, _ = _eval(
        capsys, "--retrieve-only", "--compare", "--ids", *ids, "--out", str(out_dir), *_on_seeds(seeds_index)
    )
    assert code == 0
    for mode in ("dense", "keyword", "hybrid"):
        assert f"| {mode} " in out
    assert "hit@5 dense" in out and "MRR@10 hybrid" in out  # by language, side by side
    report = (out_dir / "report.md").read_text(encoding="utf-8")
    sections = ["## Summary", "## By language", "## By kind", "## Latency (ms)", "## Charts", "## Failures"]
    positions = [report.index(s) for s in sections]
    assert positions == sorted(positions)
    assert "Reproduce with: `rag eval" in report and "--compare" in report
    rows = [json.loads(line) for line in (out_dir / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(r["config"], r["id"]) for r in rows] == [(m, i) for m in ("dense", "keyword", "hybrid") for i in ids]
    assert all(len(r["retrieved"]) == 10 for r in rows)
    for chart in ("by_language.png", "latency.png"):
        assert (out_dir / chart).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({chart})" in report


# -- the CI gate -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def retrieval_gate(seeds_index):
    code, out = run_main(
        rag_main,
        ["eval", "--gold", str(GOLD), "--retrieve-only", "--json", *_on_seeds(seeds_index), "--ids", *FIRST_GOLD],
    )
    assert code == 0
    return json.loads(out)["retrieval"]


def test_gate_retrieval_hit_at_5(retrieval_gate, seeds_retrieval):
    assert retrieval_gate["n"] == sum(1 for i in load_gold(GOLD, SEEDS) if i.answerable and i.id in FIRST_GOLD)
    assert retrieval_gate["hit@5"] >= FLOOR_HIT_AT_5, f"hit@5 = {retrieval_gate['hit@5']:.3f}: {retrieval_gate}"
    whole = seeds_retrieval
    assert whole["n"] == sum(1 for i in load_gold(GOLD, SEEDS) if i.answerable)
    assert whole["hit@5"] >= FLOOR_HIT_AT_5_ALL, f"hit@5 on the whole gold set = {whole['hit@5']:.3f}"


@pytest.mark.xfail(strict=True, reason="issue 3 target not reached by multilingual-e5-small (docs/evaluation.md)")
def test_target_retrieval_hit_at_5(retrieval_gate):
    assert retrieval_gate["hit@5"] >= TARGET_HIT_AT_5


@pytest.fixture(scope="module")
def answer_gate(seeds_index, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("gate") / "report"
    code, out = run_main(
        rag_main,
        [
            "eval",
            "--gold",
            str(GOLD),
            "--ids",
            f"@{CI_SAMPLE}",
            "--json",
            "--out",
            str(out_dir),
            *_on_seeds(seeds_index),
        ],
    )
    assert code == 0
    return json.loads(out), out_dir


@pytest.mark.slow
def test_gate_answers_on_the_fixed_sample(answer_gate):
    metrics, out_dir = answer_gate
    answer = metrics["answer"]
    assert metrics["questions"] == 12 and answer["answerable"] == 10 and answer["unanswerable"] == 2
    assert answer["errors"] == 0
    latency = metrics["latency_ms"]
    assert latency["first_token"]["p50"] <= latency["total"]["p50"]
    report = (out_dir / "report.md").read_text(encoding="utf-8")
    failed = metrics["failed"]
    assert f"{len(failed)} of 12 questions failed" in report
    for question_id in failed:
        assert f"#### {question_id} " in report
    if failed:
        assert "- **Answered:**" in report and "- **The LLM read:**" in report
    assert answer["accuracy"] >= FLOOR_ANSWER_ACCURACY, f"answer accuracy: {answer}"
    assert answer["refusal_answerable"] >= FLOOR_REFUSAL_ACCURACY, f"answering answerable questions: {answer}"


@pytest.mark.slow
def test_target_refusal_of_unanswerable_on_the_fixed_sample(answer_gate):
    # Met again since --min-answerable was chosen on the public dev split (0.75): q098, at
    # P(answerable) 0.72, is refused (it was answered from the translated search's hits).
    answer = answer_gate[0]["answer"]
    assert answer["refusal_unanswerable"] >= FLOOR_REFUSAL_ACCURACY, f"refusal of unanswerable questions: {answer}"


@pytest.mark.slow
def test_llms_are_compared_in_one_table_with_the_same_numbers_for_the_same_model(seeds_index, capsys):
    small = find(FAST_LLM, "llm").target  # any model shows it; the small one answers fastest
    model = str(MODELS_DIR / small)
    code, out, _ = _eval(capsys, "--ids", "q001", "q093", "--llms", model, model, "--json", *_on_seeds(seeds_index))
    assert code == 0
    configurations = json.loads(out)["configurations"]
    assert [c["label"] for c in configurations] == [f"{small} (1)", f"{small} (2)"]
    first, second = (
        {key: c[key] for key in ("retrieval", "answer", "by_lang", "by_kind", "failed")} for c in configurations
    )
    assert first == second  # deterministic: same index and model, same numbers
