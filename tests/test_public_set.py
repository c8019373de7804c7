"""The public evaluation set's builder (harness/public_set.py) on tiny source files written
here, one in each format it reads (SQuAD-style CMRC and COVID-QA JSON, the FacQA CSV), checked
by the same gold loader `rag eval` uses."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest

from harness import public_set
from harness.gold import load_gold
from rag.errors import RagError

CMRC = {
    "version": "v1.0",
    "data": [
        {
            "id": "DEV_1",
            "title": "测试车站",
            "paragraphs": [
                {
                    "id": "DEV_1",
                    # one run of text, longer than one line: the builder cuts it after sentence ends
                    "context": "测试车站是一个地铁车站。" * 12
                    + "本站共有三层，于2003年开通。"
                    + "车站附近有公园。" * 20,
                    "qas": [
                        {
                            "id": "DEV_1_QUERY_0",
                            "question": "测试车站哪一年开通？",
                            "answers": [{"text": "2003年", "answer_start": 12 * 12 + 8}],
                        }
                    ],
                }
            ],
        },
        {
            "id": "DEV_2",
            "title": "另一篇",
            "paragraphs": [
                {
                    "id": "DEV_2",
                    "context": "另一篇文章讲的是一座山。山高1200米。",
                    "qas": [
                        {
                            "id": "DEV_2_QUERY_0",
                            "question": "这座山有多高？",
                            "answers": [{"text": "1200米", "answer_start": 14}],
                        }
                    ],
                }
            ],
        },
    ],
}

COVIDQA = {
    "data": [
        {
            "paragraphs": [
                {
                    "document_id": 7,
                    "context": "A Study of Test Viruses\n\nAbstract: The test virus spreads by touch.\n\n"
                    "Text: It was first seen in 2003 in Testville. About 8000 people were infected.",
                    # answer_start is off by two, as in some of the real file: found by nearest occurrence
                    "qas": [
                        {
                            "id": 11,
                            "question": "How many people were infected?",
                            "answers": [{"text": "8000", "answer_start": 123}],
                            "is_impossible": False,
                        },
                        {
                            "id": 12,
                            "question": "How does the test virus spread?",
                            "answers": [{"text": "by touch", "answer_start": 58}],
                            "is_impossible": False,
                        },
                    ],
                }
            ]
        }
    ]
}

FACQA_ROWS = [
    (["Siapa", "pelatih", "tim", "?"], ["Pelatih", "tim", ",", "Budi", "Santoso", ",", "senang", "."], [2, 3]),
    (["Berapa", "penonton", "?"], ["Sebanyak", "5.000", "penonton", "hadir", "(", "Sabtu", ")", "."], [1]),
    (["Di", "mana", "kota", "itu", "?"], ["Kota", "itu", "terletak", "di", "Jawa", "Barat", "."], [4, 5]),
]


def write_sources(folder: Path) -> None:
    (folder / "cmrc2018_dev.json").write_text(json.dumps(CMRC, ensure_ascii=False), encoding="utf-8")
    (folder / "200423_covidQA.json").write_text(json.dumps(COVIDQA), encoding="utf-8")
    with open(folder / "test_preprocess.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["question", "passage", "seq_label"])
        for question, passage, answer in FACQA_ROWS:
            labels = ["B" if i == answer[0] else "I" if i in answer else "O" for i in range(len(passage))]
            writer.writerow([repr(question), repr(passage), repr(labels)])


def selection(folder: Path) -> list[dict]:
    def source(name, fmt, file):
        digest = hashlib.sha256((folder / file).read_bytes()).hexdigest()
        return {"type": "source", "name": name, "format": fmt, "file": file, "sha256": digest, "repo": "r", "path": "p"}

    return [
        source("cmrc2018", "squad-cmrc", "cmrc2018_dev.json"),
        source("covidqa", "squad-covidqa", "200423_covidQA.json"),
        source("facqa", "facqa-csv", "test_preprocess.csv"),
        {"type": "document", "source": "cmrc2018", "doc": "DEV_1", "file": "zh-1.txt", "split": "dev"},
        {"type": "document", "source": "cmrc2018", "doc": "DEV_2", "file": "zh-2.txt", "split": "test"},
        {"type": "document", "source": "covidqa", "doc": "7", "file": "en-7.txt", "split": "test"},
        {
            "type": "document",
            "source": "facqa",
            "doc": "facqa-01",
            "rows": [0, 1, 2],
            "file": "id-1.txt",
            "split": "dev",
        },
        {"type": "question", "id": "zh1", "file": "zh-1.txt", "source_question": "DEV_1_QUERY_0"},
        {"type": "question", "id": "zh2", "file": "zh-2.txt", "source_question": "DEV_2_QUERY_0"},
        {"type": "question", "id": "en1", "file": "en-7.txt", "source_question": "11"},
        {"type": "question", "id": "en2", "file": "en-7.txt", "source_question": "12", "also": ["touch"]},
        {"type": "question", "id": "id1", "file": "id-1.txt", "source_question": "1"},
        {
            "type": "question",
            "id": "ko1",
            "lang": "ko",
            "question": "테스트 역은 몇 년에 개통했나요?",
            "answers": ["2003"],
            "kind": "cross",
            "file": "zh-1.txt",
            "source_question": "DEV_1_QUERY_0",
        },
        {
            "type": "question",
            "id": "u1",
            "lang": "en",
            "question": "Who built the test station?",
            "kind": "unanswerable",
            "about": "zh-1.txt",
        },
    ]


@pytest.fixture
def built(tmp_path):
    sources = tmp_path / "sources"
    sources.mkdir()
    write_sources(sources)
    files, gold = public_set.build(selection(sources), sources)
    public_set.write(files, gold, tmp_path / "out")
    return tmp_path / "out", gold


def test_documents_are_one_paragraph_per_line(built):
    out, _ = built
    station = (out / "docs" / "zh-1.txt").read_text(encoding="utf-8").splitlines()
    assert station[0] == "测试车站"  # the title first
    assert len(station) >= 3 and all(len(line) <= public_set.CJK_LINE + 20 for line in station)
    assert "".join(station[1:]) == CMRC["data"][0]["paragraphs"][0]["context"]  # cut, nothing lost
    article = (out / "docs" / "en-7.txt").read_text(encoding="utf-8").splitlines()
    assert article == [
        "A Study of Test Viruses",
        "Abstract: The test virus spreads by touch.",
        "Text: It was first seen in 2003 in Testville. About 8000 people were infected.",
    ]
    news = (out / "docs" / "id-1.txt").read_text(encoding="utf-8").splitlines()
    assert news == [
        "Pelatih tim, Budi Santoso, senang.",
        "Sebanyak 5.000 penonton hadir (Sabtu).",
        "Kota itu terletak di Jawa Barat.",
    ]


def test_every_question_passes_the_gold_loader_and_its_evidence_holds_the_answer(built):
    out, gold = built
    for split in public_set.SPLITS:
        items = load_gold(out / f"{split}.jsonl", out / "docs")
        assert [i.id for i in items] == [row["id"] for row in gold[split]]
        for item in items:
            if item.answerable:
                assert any(a in item.evidence for a in item.answers)
    rows = {row["id"]: row for split in gold.values() for row in split}
    assert rows["en1"]["evidence"] == "About 8000 people were infected."  # the sentence, not the line
    assert rows["en1"]["kind"] == "number" and rows["en2"]["kind"] == "fact"
    assert rows["en2"]["answers"] == ["by touch", "touch"]
    assert rows["id1"]["answers"] == ["5.000"] and rows["id1"]["lang"] == "id"
    assert rows["zh1"]["answers"] == ["2003年", "2003"]  # the digits a right answer may give alone


def test_split_is_by_document(built):
    _, gold = built
    assert {row["id"] for row in gold["dev"]} == {"zh1", "id1", "ko1", "u1"}
    assert {row["id"] for row in gold["test"]} == {"zh2", "en1", "en2"}
    for split in public_set.SPLITS:
        assert all(row["file"] in (None, *{r["file"] for r in gold[split] if r["file"]}) for row in gold[split])
    dev_files = {row["file"] for row in gold["dev"] if row["file"]}
    test_files = {row["file"] for row in gold["test"] if row["file"]}
    assert not dev_files & test_files


def test_cross_and_unanswerable_questions_are_attached(built):
    _, gold = built
    rows = {row["id"]: row for row in gold["dev"]}
    cross, source = rows["ko1"], rows["zh1"]
    assert cross["kind"] == "cross" and cross["lang"] == "ko" and cross["question"].startswith("테스트")
    assert cross["file"] == source["file"] and cross["evidence"] == source["evidence"]
    assert cross["answers"] == ["2003", "2003年"]  # the written answers, then the source's
    assert rows["u1"] == {
        "id": "u1",
        "question": "Who built the test station?",
        "lang": "en",
        "file": None,
        "evidence": None,
        "answers": [],
        "kind": "unanswerable",
    }


def test_another_version_of_a_source_file_is_refused(tmp_path):
    write_sources(tmp_path)
    chosen = selection(tmp_path)
    (tmp_path / "200423_covidQA.json").write_text(json.dumps({"data": []}), encoding="utf-8")
    with pytest.raises(RagError, match="sha256"):
        public_set.build(chosen, tmp_path)


def test_split_assignment_is_seeded_and_halves(tmp_path):
    docs = [f"d{i}" for i in range(10)]
    first = public_set.assign_splits(docs)
    assert first == public_set.assign_splits(list(reversed(docs)))
    assert sorted(first.values()).count("dev") == 5


def test_committed_selection_is_split_by_document_and_balanced():
    rows = public_set.read_selection(public_set.DEFAULT_OUT / public_set.SELECTION)
    documents = [r for r in rows if r["type"] == "document"]
    split = {r["file"]: r["split"] for r in documents}
    questions = [r for r in rows if r["type"] == "question"]
    assert len(documents) >= 40 and len(questions) >= 300
    assert abs(sum(s == "dev" for s in split.values()) - len(split) / 2) <= 1
    assert all((q.get("file") or q.get("about")) in split for q in questions)
    by_lang = {}
    for q in questions:
        lang = q.get("lang") or next(
            s["lang"] for s in rows if s["type"] == "source" and s["name"] == _source_of(rows, q)
        )
        by_lang[lang] = by_lang.get(lang, 0) + 1
    assert set(by_lang) == {"en", "ko", "zh", "id"} and min(by_lang.values()) >= 60


def _source_of(rows: list[dict], question: dict) -> str:
    return next(r["source"] for r in rows if r["type"] == "document" and r["file"] == question["file"])
