"""The chat's logic, without Gradio: one conversation's state, an answer streamed into it,
Stop, follow-ups, starting over, and the saved conversations (rag/history.py): each question
recorded as it is asked and completed as it settles, reopened, renamed, deleted, exported;
and the sidebar that lists them (`Sidebar`).

`Chat` holds the Assistant and no per-user state; each browser session keeps its own
`ChatState` (the page stores it between events) and hands it to every call. A call gives
back `View`s: the new state and what else changed on the page (the Sources panel, whether
an answer is being written); the sidebar's steps give back `SidebarView`s. ui/app.py lays the
page out and turns these into component updates; everything here is testable with the fakes
of tests/fakes.py.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import time
import traceback
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rag.assistant import Done, Retrieved, Token, clean_question
from rag.errors import RagError
from rag.history import ANSWERED, FAILED, LOCAL, PENDING, STOPPED, History, changes, folder_sha256, settled_answer
from rag.scope import scope_of_choices

from . import render

# Slider ranges (whatever a client sends is clamped to these).
K_RANGE = (1, 20)
MAX_TOKENS_RANGE = (32, 1024)
TEMPERATURE_RANGE = (0.0, 1.5)

THINKING = '<span class="thinking">Searching the documents…</span>'
WRITING = '<span class="thinking">Reading the passages…</span>'
CURSOR = " ▍"
STOPPED_MARK = ' <span class="stopped">(stopped)</span>'
INTERRUPTED_MARK = '<span class="stopped">(interrupted: the server stopped before the answer was settled)</span>'

# What a session keeps: the turns a follow-up may read (only the last is), and the turns shown in
# the chat (the Sources panel keeps render.KEPT_TURNS sections); not every turn ever.
KEPT_TURNS = 4
KEPT_CHAT_TURNS = 50
# Stops remembered for their answer's next steps (one that had already ended never takes one).
KEPT_STOPS = 256


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
    turns: list[dict] = field(default_factory=list)  # the last answered: turn number, question, standalone, answer
    sections: list[str] = field(default_factory=list)  # the Sources panel's HTML of each answered question
    conversation: int | None = None  # its number in the history, once a question was asked
    pending: int | None = None  # the history's turn being answered
    draft: str = ""  # the answer being written, as far as it got
    answer_token: str = ""  # names the answer being written, for Stop

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
    """The chat over one Assistant, saving into `history` if given. Each View carries a snapshot
    of the state, so what the page stores after any step (the last one, when Stop cuts the
    answer short) is that step's. `owner` is the signed-in user ("" without sign-in)."""

    def __init__(self, assistant, history: History | None = None) -> None:
        self.assistant = assistant
        self.history = history
        # The tokens of answers cut short (by Stop, or by starting over), with Stop's view of each.
        self._stops: OrderedDict[str, View | None] = OrderedDict()

    def _cut(self, token: str, view: View | None = None) -> None:
        """Remember that the answer named `token` (if any) was cut short, and how Stop showed it."""
        if token:
            self._stops[token] = view
            while len(self._stops) > KEPT_STOPS:
                self._stops.popitem(last=False)

    def respond(
        self,
        state: ChatState,
        question,
        k=None,
        max_tokens=None,
        temperature=None,
        owner: str = LOCAL,
        picked=None,
    ) -> Iterator[View]:
        """Stream one answer into the conversation and its sources into the panel, searching the
        documents `picked` beside the question box (rag.scope.scope_choices' values) and those
        `@mentioned` in it, or all when none. Closing the iterator (Stop) gives the LLM back as
        soon as the current step ends."""
        state = (state or ChatState()).copy()
        token = state.answer_token = uuid.uuid4().hex
        answering = self._respond(state, question, k, max_tokens, temperature, owner, picked)
        # Until Stop names this answer: Stop's view is then the page's last word, never covered
        # by a step the answer was already taking when it was pressed.
        with contextlib.closing(answering) as views:
            for view in views:
                if token in self._stops:
                    return
                yield view

    def _respond(self, state: ChatState, question, k, max_tokens, temperature, owner, picked) -> Iterator[View]:
        started = time.perf_counter()  # the user's wait, a follow-up's rewriting included
        settings = self.assistant.settings
        question = question if isinstance(question, str) else ""
        state.messages.append({"role": "user", "content": render.md_escape(" ".join(question.split())) or "…"})
        try:
            cleaned = clean_question(question)
        except RagError as error:
            state.messages.append({"role": "assistant", "content": error_message(error)})
            state.answer_token = ""
            yield View(state.copy(), answering=False, clear_question=True)
            return
        reply = {"role": "assistant", "content": THINKING}
        state.messages.append(reply)
        unsaved = ""
        try:
            self._record_question(state, cleaned, owner)
        except RagError as error:  # answer all the same, and say so: the user may want to copy it
            state.conversation = state.pending = None
            unsaved = error_message(f"this answer is not being saved: {error}") + "\n\n"
        yield View(
            state.copy(),
            sources=render.sources_panel(state.sections, render.pending_sources(cleaned, None)),
            answering=True,
            clear_question=True,
        )
        stream = None
        try:
            asked, scope = self.assistant.without_mentions(cleaned, scope_of_choices(picked))
            rewrite = self.assistant.standalone_question(state.history, asked)
            # The LLM was asked (a follow-up): a step of the wait of its own, also when it kept the question.
            asked_llm = rewrite.reason not in ("no history", "not a follow-up")
            rewrite_ms = (time.perf_counter() - started) * 1000 if asked_llm else 0.0
            # Said whenever the question searched is not the one typed (a follow-up made standalone,
            # a mention taken out), as `open` says it of a saved turn.
            note = unsaved + (render.rewrite_note(rewrite.standalone) if rewrite.standalone != cleaned else "")
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
                scope=scope,
            )
            pieces: list[str] = []
            for event in stream:
                if isinstance(event, Retrieved):
                    reply["content"] = note + WRITING
                    pending = render.pending_sources(rewrite.standalone, event.hits, self.assistant.index.files)
                    yield View(state.copy(), sources=render.sources_panel(state.sections, pending))
                elif isinstance(event, Token):
                    pieces.append(event.text)
                    state.draft = "".join(pieces)
                    reply["content"] = note + render.draft_markdown("".join(pieces)) + CURSOR
                    yield View(state.copy())
                elif isinstance(event, Done):
                    self._record_answer(state, rewrite.standalone, event.answer)
                    waits = {
                        "rewrite": rewrite_ms,
                        "total": event.answer.timings_ms.get("total", 0.0),
                        "waited": (time.perf_counter() - started) * 1000,
                    }
                    self._settle(state, cleaned, rewrite.standalone, event.answer, note, waits=waits)
                    yield View(state.copy(), sources=render.sources_panel(state.sections), answering=False)
        except RagError as error:
            reply["content"] = error_message(error)
            self._record_end(state, FAILED, str(error))
            yield View(state.copy(), sources=render.sources_panel(state.sections), answering=False)
        except Exception as error:  # keep serving; the details go to the server log only
            traceback.print_exc()
            reply["content"] = error_message(f"unexpected error ({type(error).__name__}); see the server log")
            self._record_end(state, FAILED, f"unexpected error ({type(error).__name__})")
            yield View(state.copy(), sources=render.sources_panel(state.sections), answering=False)
        finally:
            if stream is not None:
                stream.close()

    def _settle(
        self,
        state: ChatState,
        question: str,
        standalone: str,
        answer,
        note: str,
        stale: dict | None = None,
        waits: dict | None = None,
    ) -> None:
        """The checked answer replaces the draft; its sources join the panel; the turn is kept for
        follow-ups. `stale`: cited files changed or gone since (a reopened answer); `waits`: the
        user's wait step by step (render.wait_times), else the answer's own timings."""
        stale = stale or {}
        turn = (state.turns[-1]["turn"] if state.turns else 0) + 1  # counted on past the turns let go
        index = self.assistant.index
        state.messages[-1]["content"] = (
            note
            + render.scope_note(answer.searched, index.files)
            + render.searched_as_note(answer.searched_as)
            + render.answer_message(answer, turn, index.files, stale)
        )
        cited = {c.file: index.paragraphs_of(c.file) for c in answer.citations if c.file not in stale}
        state.sections.append(
            render.turn_sources(turn, standalone, answer, cited, index.files, waits or answer.timings_ms, stale)
        )
        state.turns.append({"turn": turn, "question": question, "standalone": standalone, "answer": answer.text or ""})
        state.pending, state.draft, state.answer_token = None, "", ""
        # A session keeps what it shows and what a follow-up reads, not every turn ever.
        del state.turns[:-KEPT_TURNS], state.sections[: -render.KEPT_TURNS], state.messages[: -2 * KEPT_CHAT_TURNS]

    # -- saving as it happens ---------------------------------------------------------------
    def _record_question(self, state: ChatState, question: str, owner: str) -> None:
        if self.history is None:
            return
        if state.conversation is None:
            state.conversation = self.history.create(question, owner).id
        state.pending = self.history.ask(state.conversation, question, question, owner)

    def _record_answer(self, state: ChatState, standalone: str, answer) -> None:
        if self.history is not None and state.pending is not None:
            self.history.answer(state.conversation, state.pending, answer, self.assistant.index.files, standalone)

    def _record_end(self, state: ChatState, status: str, text: str | None) -> None:
        if self.history is not None and state.pending is not None:
            self.history.end(state.conversation, state.pending, status, text)
        state.pending, state.draft, state.answer_token = None, "", ""

    def stop(self, state: ChatState) -> View:
        """The answer being written, as far as it got, marked as stopped (and saved so)."""
        state = (state or ChatState()).copy()
        token = state.answer_token
        self._cut(token)  # at once: the answer's next step shows nothing more
        if state.messages and state.messages[-1].get("role") == "assistant":
            text = message_text(state.messages[-1].get("content"))
            for transient in (CURSOR, THINKING, WRITING):
                text = text.replace(transient, "")
            state.messages[-1]["content"] = text + STOPPED_MARK
        self._record_end(state, STOPPED, state.draft or None)
        view = View(state, sources=render.sources_panel(state.sections), answering=False)
        self._cut(token, view)  # for after_stop
        return view

    def after_stop(self, state: ChatState | None) -> View | None:
        """Stop's view once more, just after Stop: the page runs Stop beside the answer, so a
        step the answer sent just before Stop ran may reach the page after Stop's view and cover
        its "(stopped)" (and may have been stored as the page's state). None when another answer
        has started since (it is not to be touched)."""
        state = state or ChatState()
        if not state.answer_token:  # Stop's own state: shown again as it is
            return View(state.copy(), sources=render.sources_panel(state.sections), answering=False)
        view = self._stops.get(state.answer_token)
        if view is not None:
            self._stops[state.answer_token] = None  # shown again once: the page asks right after Stop
        return view

    def new(self, state: ChatState | None = None) -> View:
        """An empty conversation (an answer being written in the old one is saved as stopped)."""
        if state is not None:
            self._cut(state.answer_token)
            self._record_end(state.copy(), STOPPED, state.draft or None)
        return View(ChatState(), sources=render.sources_panel([]), answering=False, clear_question=True)

    # -- saved conversations ----------------------------------------------------------------
    def conversations(self, owner: str = LOCAL) -> list:
        return [] if self.history is None else self.history.conversations(owner)

    def open(self, conversation_id: int, state: ChatState | None = None, owner: str = LOCAL) -> View:
        """A saved conversation, shown as it was answered; a citation whose document changed or
        went since says so, and its card shows the text as it was cited."""
        if self.history is None:
            raise RagError("conversations are not saved here")
        turns = self.history.turns(conversation_id, owner)
        self.new(state)  # an answer still being written in the current one is kept as stopped
        opened = ChatState(conversation=conversation_id)
        current = folder_sha256(self.assistant.settings.docs_dir)
        for turn in turns:
            opened.messages.append({"role": "user", "content": render.md_escape(turn.question) or "…"})
            opened.messages.append({"role": "assistant", "content": ""})
            note = render.rewrite_note(turn.standalone) if turn.standalone != turn.question else ""
            if turn.status == ANSWERED:
                answer = settled_answer(turn)
                self._settle(opened, turn.question, turn.standalone, answer, note, changes(turn, current))
            elif turn.status == STOPPED:
                opened.messages[-1]["content"] = render.md_escape(turn.answer or "") + STOPPED_MARK
            elif turn.status == PENDING:
                opened.messages[-1]["content"] = INTERRUPTED_MARK
            else:
                opened.messages[-1]["content"] = error_message(turn.answer or "failed")
        return View(opened, sources=render.sources_panel(opened.sections), answering=False, clear_question=True)

    def rename(self, state: ChatState, title: str, owner: str = LOCAL) -> None:
        if self.history is None or state is None or state.conversation is None:
            raise RagError("ask a question first: there is no conversation to rename")
        self.history.rename(state.conversation, title if isinstance(title, str) else "", owner)

    def delete(self, state: ChatState, owner: str = LOCAL) -> View:
        """The conversation deleted from the history; an empty one in its place."""
        if self.history is None or state is None or state.conversation is None:
            raise RagError("there is no saved conversation to delete")
        self.history.delete(state.conversation, owner)
        return self.new()

    def export(self, state: ChatState, folder: Path, owner: str = LOCAL) -> tuple[Path, Path] | None:
        """The conversation written as Markdown and JSON files in `folder`, or None before any question."""
        if self.history is None or state is None or state.conversation is None:
            return None
        current = folder_sha256(self.assistant.settings.docs_dir)
        exported = self.history.export_json(state.conversation, current, owner)
        name = re.sub(r"[^\w-]+", "-", exported["title"]).strip("-")[:60] or "conversation"
        folder = Path(folder) / str(state.conversation)
        folder.mkdir(parents=True, exist_ok=True)
        markdown, data = folder / f"{name}.md", folder / f"{name}.json"
        markdown.write_text(self.history.export_markdown(state.conversation, current, owner), encoding="utf-8")
        data.write_text(json.dumps(exported, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        return markdown, data


# -- the conversations sidebar ---------------------------------------------------------------
@dataclass(frozen=True)
class Listed:
    """The saved conversations as the sidebar lists them."""

    choices: list[tuple[str, str]]  # (label, conversation number as text), the most recent first
    selected: str | None  # the open conversation's choice, once it is saved
    title: str  # the open conversation's title ("" before any question)
    exports: tuple[Path, Path] | None  # its Markdown and JSON files, for download


@dataclass(frozen=True)
class SidebarView:
    """What one sidebar step changes on the page; None means unchanged."""

    listed: Listed | None = None
    status: str | None = None  # the sidebar's status line (HTML)
    confirm_delete: bool | None = None  # True: the second button that deletes is shown
    chat: View | None = None  # the conversation shown in the chat, when it changed


class Sidebar:
    """The saved conversations of a `Chat`, listed, opened, renamed and deleted, as the sidebar
    offers them; the export files for download are written under `exports`."""

    def __init__(self, chat: Chat, exports: Path) -> None:
        self.chat = chat
        self.exports = Path(exports)

    def listed(self, state: ChatState | None, owner: str = LOCAL) -> SidebarView:
        """The conversations, the open one selected with its title and exports; no status, no confirmation."""
        return SidebarView(self._listed(state, owner), status="", confirm_delete=False)

    def after_delete(self, state: ChatState | None, owner: str = LOCAL) -> SidebarView:
        """The list without the conversation just deleted; the status ("Deleted") is kept."""
        return SidebarView(self._listed(state, owner), confirm_delete=False)

    def _listed(self, state: ChatState | None, owner: str) -> Listed:
        listed = self.chat.conversations(owner)
        current = state.conversation if state is not None else None
        files = self.chat.export(state, self.exports, owner) if current in {c.id for c in listed} else None
        return Listed(
            choices=[(c.label, str(c.id)) for c in listed],
            selected=str(current) if files else None,
            title=next((c.title for c in listed if c.id == current), ""),
            exports=files,
        )

    def open(self, choice, state: ChatState | None, owner: str = LOCAL) -> SidebarView:
        """The conversation picked in the list (its choice value), in the chat."""
        try:
            return SidebarView(chat=self.chat.open(int(choice), state, owner))
        except (TypeError, ValueError):
            return SidebarView(status=render.status("error", f"there is no conversation {choice!r}"))
        except RagError as error:
            return SidebarView(status=render.status("error", str(error)))

    def rename(self, title, state: ChatState | None, owner: str = LOCAL) -> SidebarView:
        try:
            self.chat.rename(state, title, owner)
        except RagError as error:
            return SidebarView(status=render.status("error", str(error)))
        return self.listed(state, owner)

    @staticmethod
    def ask_to_delete(state: ChatState | None) -> SidebarView:
        """Deleting is not undone: it asks first, with a second button."""
        if state is None or state.conversation is None:
            return SidebarView(status=render.status("error", "there is no saved conversation to delete"))
        return SidebarView(
            status=render.status("warning", "Delete this conversation? This cannot be undone."), confirm_delete=True
        )

    def delete(self, state: ChatState | None, owner: str = LOCAL) -> SidebarView:
        """The conversation deleted; an empty one in the chat."""
        try:
            view = self.chat.delete(state, owner)
        except RagError as error:
            return SidebarView(status=render.status("error", str(error)), confirm_delete=False)
        return SidebarView(status=render.status("ok", "Deleted"), confirm_delete=False, chat=view)
