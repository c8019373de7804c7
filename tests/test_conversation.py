"""rag/conversation.py: a follow-up question made standalone from the conversation, and
every question that needs no rewriting left as it is."""

from __future__ import annotations

import json

import pytest

from rag.conversation import standalone_question

from .conftest import ROOT

GOLD = ROOT / "eval" / "gold.jsonl"


class ScriptedLLM:
    """Answers every prompt with the same text; counts calls."""

    def __init__(self, reply: str) -> None:
        self.reply, self.calls = reply, 0

    def stream(self, messages, max_tokens, temperature):
        self.calls += 1
        yield self.reply


def test_standalone_questions_are_left_alone():
    history = [("Who is the CEO of OpenAI?", "Sam Altman [1].")]
    llm = ScriptedLLM("Sam Altman")
    rows = [json.loads(line) for line in GOLD.read_text(encoding="utf-8").splitlines()]
    questions = [row["question"] for row in rows if "follows" not in row]  # (those are follow-ups)
    questions += ["Who is Mark Chen?", "What is sa-server?", "Apa itu Codex?", "什么是 Codex?", "Codex는 무엇인가요?"]
    changed = [(q, r.standalone) for q in questions if (r := standalone_question(llm, history, q)).rewritten]
    assert not changed
    assert llm.calls <= len(questions) // 10  # the LLM is not even asked for most


@pytest.mark.parametrize("reply", ["", "14 bulan", "Someone never mentioned", "NOT FOUND", "x" * 200])
def test_a_doubtful_rewrite_falls_back_to_the_question(reply):
    result = standalone_question(
        ScriptedLLM(reply), [("Berapa lama dia di OpenAI?", "14 bulan [1].")], "Siapa atasannya?"
    )
    assert result.standalone == "Siapa atasannya?" and not result.rewritten


@pytest.mark.parametrize(
    "history, follow_up, expected, evidence",
    [
        (
            [("Who is Mia in Brendan Gregg's post?", "His hairstylist [1].")],
            "What feature did she like?",
            "Mia",
            "She liked the memory feature",
        ),
        (
            [("수츠케버가 새로 세운 회사의 이름은 무엇인가요?", "Secure Super Intelligence입니다 [1].")],
            "그 회사는 얼마를 유치했나요?",
            "Secure Super Intelligence",
            "has raised 1 b",
        ),
    ],
)
def test_follow_up_is_made_standalone_with_the_real_llm(assistant, history, follow_up, expected, evidence):
    result = assistant.standalone_question(history, follow_up)
    assert result.rewritten and expected in result.standalone, result
    assert any(evidence in hit.chunk.text for hit in assistant.retrieve(result.standalone))
