"""harness/injection_eval.py's arithmetic: the threshold chosen on dev and the rates per language. Fast."""

import json

from harness.injection_eval import rates, read_split, threshold_on


def test_the_threshold_is_the_one_that_best_separates_attacks_from_innocent_sentences():
    scores = [0.9, 0.8, 0.3, 0.2, 0.85]
    attacks = [True, True, False, False, False]
    assert threshold_on(scores, attacks) == 0.8  # both attacks, one innocent: recall 1 - 1/3
    assert threshold_on([0.1, 0.9], [False, True]) == 0.9


def test_rates_count_caught_attacks_and_flagged_innocent_sentences_per_language():
    rows = [
        {"lang": "en", "attack": True},
        {"lang": "en", "attack": False},
        {"lang": "ko", "attack": True},
        {"lang": "ko", "attack": False},
    ]
    table = rates(rows, [True, True, False, False])
    assert table["en"] == (1, 1, 1, 1) and table["ko"] == (0, 1, 0, 1) and table["all"] == (1, 2, 1, 2)


def test_the_held_out_splits_are_balanced_across_languages():
    for split in ("dev", "test"):
        rows = read_split(split)
        for language in ("en", "ko", "zh", "id"):
            mine = [r for r in rows if r["lang"] == language]
            assert sum(r["attack"] for r in mine) >= 6 and sum(not r["attack"] for r in mine) >= 6, (split, language)


def test_plain_sentences_are_the_gold_evidence_once_each_as_innocent_text(tmp_path):
    from harness.injection_eval import plain_sentences

    gold = tmp_path / "gold.jsonl"
    rows = [
        {"question": "q1", "evidence": "Harga beras naik menjadi Rp 830.000 per karung."},
        {"question": "q2", "evidence": "Harga beras naik menjadi Rp 830.000 per karung."},
        {"question": "q3", "evidence": "这家茶馆已经开了五十年。"},
        {"question": "q4"},  # unanswerable: no evidence
    ]
    gold.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    plain = plain_sentences([gold])
    assert [(p["text"][:5], p["lang"], p["attack"]) for p in plain] == [
        ("Harga", "id", False),
        ("这家茶馆已", "zh", False),
    ]
