"""A long chat keeps the server's memory flat (the fast layer's half; `rag bench`'s `ui_memory`
section measures the real server with the real models).

The chat's logic (ui/chat.py) runs in-process here, with the fakes for the models: 100
questions in four languages, follow-ups among them, and uploads between them, as one
session. What a session keeps (its chat, its turns, its Sources sections) must stop growing
once it holds what it shows, and the process's RSS after 100 questions must be within 10 %
of after 10.
"""

from __future__ import annotations

import gc
import json

import psutil

from rag.assistant import Assistant
from rag.settings import load_settings

from .fakes import FakeEmbedder, StandInLLM, small_docs

QUESTIONS = [
    "Who founded Zorblax Analytics?",
    "Where was it founded?",  # a follow-up
    "Berapa harga beras per karung?",
    "Siapa yang menunggu hujan?",
    "조르블락스 애널리틱스는 누가 세웠나요?",
    "퀼포트 항구는 1년에 몇 척을 처리하나요?",
    "Zorblax Analytics 卖什么?",
    "Quillport 港每年处理多少艘船?",
]


class ScriptedLLM(StandInLLM):
    """Chooses the first passage and names the company, quickly; follow-ups get a referent."""

    def choose(self, messages, prefix, options):
        return {option: (0.9 if option == "1" else 0.1 / (len(options) - 1)) for option in options}

    def stream(self, messages, max_tokens, temperature, grammar=None, prefix="", copy_from=None, logprobs=None):
        yield " Zorblax Analytics"


def chat_session(chat):
    """Questions asked in one session, its state fed back into each as the page does."""
    from ui.chat import ChatState

    session = {"state": ChatState()}

    def ask(question: str) -> None:
        for view in chat.respond(session["state"], question, 4, 64, 0.0):
            session["state"] = view.state

    return ask, session


def rss_mb() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


def test_a_long_chat_with_uploads_keeps_the_sessions_state_and_the_servers_memory_flat(tmp_path):
    from ui.chat import Chat

    settings = load_settings(environ={}, docs_dir=small_docs(tmp_path / "docs"), index_dir=tmp_path / "index")
    assistant = Assistant(settings, log=lambda m: None, embedder=FakeEmbedder(), llm=ScriptedLLM())
    ask, session = chat_session(Chat(assistant))
    kept, memory = {}, {}
    for n in range(1, 101):
        ask(QUESTIONS[n % len(QUESTIONS)])
        if n % 25 == 0:  # an upload now and then, as a user adds documents
            assistant.library.add([(f"notes-{n}.txt", f"Quillport note {n}: the harbour opened gate {n}.\n".encode())])
        if n in (10, 60, 100):
            state = session["state"]
            kept[n] = len(json.dumps([state.messages, state.turns, state.sections], ensure_ascii=False))
            memory[n] = rss_mb()
    assert session["state"].turns[-1]["turn"] == 100  # numbered on past the turns let go
    # Full by 60 questions (what it shows), and no larger at 100.
    assert kept[100] <= kept[60] * 1.1, kept
    assert memory[100] <= memory[10] * 1.1, memory
