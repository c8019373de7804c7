"""The chat's logic, without Gradio: one conversation's state, an answer streamed into it,
Stop, follow-ups and starting over.

`Chat` holds the Assistant and no per-user state; each browser session keeps its own
`ChatState` (the page stores it between events) and hands it to every call. A call gives
back `View`s: the new state and what else changed on the page (the Sources panel, whether
an answer is being written). ui/app.py lays the page out and turns Views into component
updates; everything here is testable with the fakes of tests/fakes.py.
"""

from __future__ import annotations

import copy
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field

from rag.assistant import Done, Retrieved, Token, clean_question
from rag.errors import RagError

from . import render

# Slider ranges (whatever a client sends is clamped to these).
K_RANGE = (1, 20)
MAX_TOKENS_RANGE = (32, 1024)
TEMPERATURE_RANGE = (0.0, 1.5)

THINKING = '<span class="thinking">Searching the documents…</span>'
WRITING = '<span class="thinking">Reading the passages…</span>'
CURSOR = " ▍"
STOPPED = ' <span class="stopped">(stopped)</span>'


def clamp(value, low, high, kind):
    try:
        return min(high, max(low, kind(value)))
    except (TypeError, ValueError):
        return low


def message_text(content) -> str:
    """A chat message's text: Gradio 6 gives a list of parts ({"type": "text", "text": ...})."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text") or "")
    if isinstance(content, list):
        return " ".join(message_text(part) for part in content)
    return ""


def error_message(message: object) -> str:
    return f'<span class="error">⚠ {render.md_escape(str(message))}</span>'


@dataclass
class ChatState:
    """One browser session's conversation."""

    messages: list[dict] = field(default_factory=list)  # the chat as displayed
    turns: list[dict] = field(default_factory=list)  # answered: question, standalone question, answer text
    sections: list[str] = field(default_factory=list)  # the Sources panel's HTML of each answered question

    def copy(self) -> ChatState:
        return copy.deepcopy(self)

    @property
    def history(self) -> list[tuple[str, str]]:
        """The earlier (standalone question, answer) pairs, oldest first, for follow-ups."""
        return [(turn["standalone"], turn["answer"]) for turn in self.turns]


@dataclass(frozen=True)
class View:
    """What one step changes on the page; None means unchanged."""

    state: ChatState
    sources: str | None = None  # the Sources panel's HTML
    answering: bool | None = None  # True: Stop offered instead of Ask
    clear_question: bool = False


class Chat:
    """The chat over one Assistant. Each View carries a snapshot of the state, so what the page
    stores after any step (the last one, when Stop cuts the answer short) is that step's."""

    def __init__(self, assistant) -> None:
        self.assistant = assistant

    def respond(self, state: ChatState, question, k=None, max_tokens=None, temperature=None) -> Iterator[View]:
        """Stream one answer into the conversation and its sources into the panel. Closing the
        iterator (Stop) gives the LLM back as soon as the current step ends."""
        state = (state or ChatState()).copy()
        settings = self.assistant.settings
        question = question if isinstance(question, str) else ""
        state.messages.append({"role": "user", "content": render.md_escape(" ".join(question.split())) or "…"})
        try:
            cleaned = clean_question(question)
        except RagError as error:
            state.messages.append({"role": "assistant", "content": error_message(error)})
            yield View(state.copy(), answering=False, clear_question=True)
            return
        reply = {"role": "assistant", "content": THINKING}
        state.messages.append(reply)
        yield View(
            state.copy(),
            sources=render.sources_panel(state.sections, render.pending_sources(cleaned, None)),
            answering=True,
            clear_question=True,
        )
        stream = None
        try:
            rewrite = self.assistant.standalone_question(state.history, cleaned)
            note = render.rewrite_note(rewrite.standalone) if rewrite.rewritten else ""
            if note:
                reply["content"] = note + THINKING
                yield View(
                    state.copy(),
                    sources=render.sources_panel(state.sections, render.pending_sources(rewrite.standalone, None)),
                )
            stream = self.assistant.stream(
                rewrite.standalone,
                k=clamp(settings.k if k is None else k, *K_RANGE, int),
                max_tokens=clamp(settings.max_tokens if max_tokens is None else max_tokens, *MAX_TOKENS_RANGE, int),
                temperature=clamp(
                    settings.temperature if temperature is None else temperature, *TEMPERATURE_RANGE, float
                ),
            )
            pieces: list[str] = []
            for event in stream:
                if isinstance(event, Retrieved):
                    reply["content"] = note + WRITING
                    pending = render.pending_sources(rewrite.standalone, event.hits)
                    yield View(state.copy(), sources=render.sources_panel(state.sections, pending))
                elif isinstance(event, Token):
                    pieces.append(event.text)
                    reply["content"] = note + render.draft_markdown("".join(pieces)) + CURSOR
                    yield View(state.copy())
                elif isinstance(event, Done):
                    self._settle(state, cleaned, rewrite.standalone, event.answer, note)
                    yield View(state.copy(), sources=render.sources_panel(state.sections), answering=False)
        except RagError as error:
            reply["content"] = error_message(error)
            yield View(state.copy(), sources=render.sources_panel(state.sections), answering=False)
        except Exception as error:  # keep serving; the details go to the server log only
            traceback.print_exc()
            reply["content"] = error_message(f"unexpected error ({type(error).__name__}); see the server log")
            yield View(state.copy(), sources=render.sources_panel(state.sections), answering=False)
        finally:
            if stream is not None:
                stream.close()

    def _settle(self, state: ChatState, question: str, standalone: str, answer, note: str) -> None:
        """The checked answer replaces the draft; its sources join the panel; the turn is kept for follow-ups."""
        turn = len(state.turns) + 1
        state.messages[-1]["content"] = note + render.answer_message(answer, turn)
        index = self.assistant.index
        languages = {name: info.get("language", "") for name, info in index.files.items()}
        cited = {c.file: index.paragraphs_of(c.file) for c in answer.citations}
        state.sections.append(render.turn_sources(turn, standalone, answer, cited, languages, answer.timings_ms))
        state.turns.append({"question": question, "standalone": standalone, "answer": answer.text or ""})

    def stop(self, state: ChatState) -> View:
        """The answer being written, as far as it got, marked as stopped."""
        state = (state or ChatState()).copy()
        if state.messages and state.messages[-1].get("role") == "assistant":
            text = message_text(state.messages[-1].get("content"))
            for transient in (CURSOR, THINKING, WRITING):
                text = text.replace(transient, "")
            state.messages[-1]["content"] = text + STOPPED
        return View(state.copy(), sources=render.sources_panel(state.sections), answering=False)

    def new(self) -> View:
        """An empty conversation."""
        return View(ChatState(), sources=render.sources_panel([]), answering=False, clear_question=True)
