"""harness/metrics.py beyond the per-question rules (tested with the gold set in
test_evaluation.py): the run's answer metrics, the threshold sweep's re-scoring, grouping by
language and kind, latency and the statistics the bench uses. Fast: rows written by hand."""

from __future__ import annotations

import pytest

from harness.metrics import answer_metrics, latency_metrics, metrics_of, p50, p95, ratio, refused_below


def row(
    qid: str,
    answerable: bool,
    abstained: bool,
    correct: bool | None = None,
    probability: float | None = None,
    lang: str = "en",
    kind: str = "fact",
    supports: tuple[bool, ...] = (),
    rank: int | None = 1,
    **extra,
) -> dict:
    """One question's record, as score_question writes it."""
    return {
        "id": qid,
        "lang": lang,
        "kind": kind if answerable else "unanswerable",
        "answerable": answerable,
        "abstained": abstained,
        "correct": correct if answerable else None,
        "citations": [{"supports": s} for s in supports],
        "cites_evidence": any(supports) if answerable else None,
        "evidence_given": answerable and rank is not None,
        "refusal_correct": abstained != answerable,
        "answerable_probability": probability,
        "rank": rank if answerable else None,
        "timings_ms": {"retrieve": 10.0, "total": 1000.0},
        "failed": answerable and not correct,
        **extra,
    }


ROWS = [
    row("q1", True, False, True, 0.9, supports=(True,)),
    row("q2", True, False, False, 0.6, lang="ko", kind="number", supports=(False, True)),
    row("q3", True, True, False, 0.2, lang="ko", rank=None),
    row("q4", False, True, probability=0.1),
    row("q5", False, False, probability=0.7, lang="zh"),
]


def test_answer_metrics_count_each_share_over_its_own_questions():
    m = answer_metrics(ROWS)
    assert (m["n"], m["answerable"], m["unanswerable"]) == (5, 3, 2)
    assert m["accuracy"] == pytest.approx(1 / 3) and m["correct"] == 1
    assert m["citation_precision"] == pytest.approx(2 / 3) and m["citations"] == 3  # q1's one, q2's two
    assert m["citation_recall"] == pytest.approx(2 / 3)  # q1 and q2 cite the evidence
    assert m["refusal_unanswerable"] == 0.5 and m["refusal_answerable"] == pytest.approx(2 / 3)
    # of the answers given (q1, q2, q5), one is right
    assert m["correct_when_answered"] == pytest.approx(1 / 3) and m["answers_given"] == 3
    assert m["refusal"] == pytest.approx(3 / 5) and m["errors"] == 0


def test_each_answerable_question_is_lost_at_the_first_step_that_missed():
    rows = [
        *ROWS,  # q1 right; q2 cites the evidence but misses; q3 refused without the evidence read
        row("q6", True, True, False, rank=1),  # refused with the evidence read
        row("q7", True, False, False, supports=(False,)),  # answered from another passage
        row("q8", True, False, False, rank=None, supports=(False,)),  # never read the evidence
        row("q9", True, False, False, error="boom"),
    ]
    assert answer_metrics(rows)["lost"] == {
        "right": 1,
        "error": 1,
        "not_read": 2,
        "refused": 1,
        "other_passage": 1,
        "wrong_span": 1,
    }


def test_an_errored_question_is_neither_an_answer_given_nor_answered():
    m = answer_metrics([row("q1", True, False, False, error="boom"), row("q2", True, False, True)])
    assert m["errors"] == 1 and m["answers_given"] == 1 and m["answered_answerable"] == 1


def test_a_higher_threshold_refuses_the_less_likely_questions_as_a_rerun_would():
    swept = refused_below(ROWS, 0.65)
    assert [r["abstained"] for r in swept] == [False, True, True, True, False]
    q2 = swept[1]
    assert q2["citations"] == [] and q2["correct"] is False and q2["refusal_correct"] is False
    assert refused_below(ROWS, 0.0) == ROWS
    m = answer_metrics(refused_below(ROWS, 0.8))
    assert m["refusal_unanswerable"] == 1.0 and m["accuracy"] == pytest.approx(1 / 3)
    # a row without a probability (an old run) or with an error is left as it was
    kept = [row("q6", True, False, True), row("q7", True, False, True, 0.1, error="x")]
    assert refused_below(kept, 0.9) == kept


def test_metrics_are_grouped_by_language_and_by_kind_in_the_gold_order():
    m = metrics_of(ROWS, cutoffs=[5, 1], with_answers=True)
    assert list(m["by_lang"]) == ["en", "ko", "zh"]
    assert list(m["by_kind"]) == ["fact", "number", "unanswerable"]  # gold.KINDS order
    assert m["retrieval"]["hit@1"] == pytest.approx(2 / 3) and set(m["retrieval"]) >= {"hit@1", "hit@5"}
    assert m["by_lang"]["ko"]["answer"]["accuracy"] == 0.0 and m["by_lang"]["zh"]["retrieval"] is None
    assert m["failed"] == ["q2", "q3"]
    assert metrics_of(ROWS, [1], with_answers=False)["answer"] is None


def test_latency_percentiles_per_stage_and_none_for_a_stage_never_timed():
    rows = [row(f"q{i}", True, False, True) for i in range(4)]
    for i, r in enumerate(rows):
        r["timings_ms"]["total"] = 1000.0 * (i + 1)
    latency = latency_metrics(rows)
    assert latency["total"] == {"p50": 2500.0, "p95": pytest.approx(3850.0), "n": 4}
    assert latency["first_token"] is None


def test_statistics():
    assert p50([3.0, 1.0, 2.0]) == 2.0
    assert p95([]) is None
    assert p95(list(map(float, range(101)))) == pytest.approx(95.0)
    assert ratio(1.0, 0.0) is None and ratio(None, 2.0) is None and ratio(3.0, 2.0) == 1.5


def test_each_refusal_gate_is_swept_on_its_own_signal_and_they_add_up():
    from harness.splits import figures, gated

    rows = [
        row("q1", True, False, True, 0.9, copy_probability=0.9, similarity=0.85),
        row("q2", True, False, False, 0.9, copy_probability=0.2, similarity=0.85),
        row("q3", False, False, None, 0.9, copy_probability=0.9, similarity=0.70),
    ]
    assert refused_below(rows, 0.5, "copy_probability")[1]["abstained"] is True
    assert [r["abstained"] for r in gated(rows, {"copy_probability": 0.5, "similarity": 0.8})] == [
        False,
        True,
        True,
    ]
    swept = figures(gated(rows, {"copy_probability": 0.5, "similarity": 0.8}))
    assert swept["right when answered"] == 1.0 and swept["unanswerable refused"] == 1.0
    assert figures(gated(rows, {}))["right when answered"] == pytest.approx(1 / 3)


def test_translations_of_right_copies_are_counted_shown_or_hidden_by_their_probability():
    from harness.splits import translation_of, translations

    def translated(qid: str, right_copy: bool, copied: str, probability: float, **shown) -> dict:
        """An answered question whose copy is (or is not) right, with its translation as `shown`."""
        return row(
            qid,
            True,
            False,
            right_copy,
            copy_correct=right_copy,
            copied=copied,
            answers=["박쥐", "bat"],
            translation_probability=probability,
            **shown,
        )

    rows = [
        translated("q1", True, "bat", 0.8, answer="박쥐 («bat» [1])"),  # an older result: read from the text
        translated("q2", True, "bat", 0.1, translation="배"),
        translated("q3", False, "cat", 0.9, translation="고양이"),  # a wrong copy: not judged
    ]
    assert translation_of(rows[0]) == "박쥐" and translation_of(rows[1]) == "배"
    table = translations(rows, {"dev": {"q1", "q2", "q3"}}).splitlines()
    assert "| dev | 0 | 1 | 1 | 0 | 0 |" in table  # shown right, shown wrong, right hidden, wrong hidden
    assert "| dev | 0.5 | 1 | 0 | 0 | 1 |" in table


def test_an_answer_is_grounded_only_when_its_copied_words_hold_an_accepted_answer():
    rows = [
        row("q1", True, False, True, copy_correct=False),  # right only in its translation
        row("q2", True, False, True, copy_correct=True),
        row("q3", False, True, None),
    ]
    m = answer_metrics(rows)
    assert m["accuracy"] == 1.0 and m["copy_accuracy"] == 0.5 and m["copy_correct"] == 1
    assert answer_metrics(refused_below(rows, 1.0, "similarity"))["copy_accuracy"] == 0.5  # no signal: kept
