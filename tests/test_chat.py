"""The chat's logic without Gradio (ui/chat.py), on the fakes: streaming, Stop, follow-ups.

The same logic in a real browser, with the real models: tests/test_ui_browser.py."""

from __future__ import annotations

import re

from rag import conversation
from rag.history import CHANGED, PENDING, STOPPED, History
from ui.chat import CURSOR, THINKING, WRITING, Chat, ChatState, Listed, Sidebar, message_text

from .fakes import fake_assistant

CLAIM = "The company was founded in Bandung in 2031 by Dewi Kartika."


def reply(messages: list[dict]) -> str:
    """The referent when asked what a follow-up is about; otherwise the claim, citing the
    passage that holds it."""
    if messages[0]["content"] == conversation.SYSTEM:
        return "Zorblax Analytics"
    n = re.search(r"\[(\d+)\] «[^»]*Dewi Kartika", messages[-1]["content"]).group(1)
    return f"[{n}] {CLAIM}"


def answering_assistant(root):
    """An Assistant on the fakes that answers rather than refusing (the fake embedder's
    similarities are not on the real one's scale)."""
    return fake_assistant(root, reply=reply, min_similarity=0.0)


def test_an_answer_streams_into_the_chat_and_settles_with_its_sources(tmp_path):
    chat = Chat(answering_assistant(tmp_path))
    before = ChatState()
    views = list(chat.respond(before, "Who founded Zorblax Analytics?"))

    first, last = views[0], views[-1]
    assert first.answering is True and first.clear_question and THINKING in first.state.messages[-1]["content"]
    assert "src-pending" in first.sources
    assert any(WRITING in v.state.messages[-1]["content"] for v in views if v.sources and "retrieved" in v.sources)
    drafts = [v for v in views if CURSOR in v.state.messages[-1]["content"]]
    assert drafts and all(v.sources is None and v.answering is None for v in drafts)  # tokens change the chat only
    assert last.answering is False
    state = last.state
    assert [m["role"] for m in state.messages] == ["user", "assistant"]
    assert state.messages[-1]["content"].startswith(f'<span lang="en">{CLAIM}') and re.search(
        r"\(#src-1-\d\)", state.messages[-1]["content"]
    )
    # the quoted sentence, where it stands: the document's title, its file on hover
    assert '> — <span class="quote-source" title="tea.txt"' in state.messages[-1]["content"]
    assert "tea farmers.</span> ¶2" in state.messages[-1]["content"]
    assert state.turns[0]["answer"].startswith(CLAIM)
    assert 'data-turn="1"' in last.sources and "tea.txt" in last.sources
    assert state.turns == [
        {
            "turn": 1,
            "question": "Who founded Zorblax Analytics?",
            "standalone": "Who founded Zorblax Analytics?",
            "answer": state.turns[0]["answer"],
        }
    ]
    assert before == ChatState()  # the session's stored state is replaced, never changed in place


def test_an_unusable_question_is_answered_with_a_one_line_error_and_asks_nothing(tmp_path):
    assistant = answering_assistant(tmp_path)
    views = list(Chat(assistant).respond(ChatState(), "🙂🙂"))
    assert len(views) == 1 and views[0].answering is False and views[0].clear_question
    assert "no words" in views[0].state.messages[-1]["content"] and views[0].state.turns == []
    assert assistant.llm.calls == []


def test_stop_closes_the_stream_and_keeps_the_draft_marked_stopped(tmp_path):
    assistant = answering_assistant(tmp_path)
    chat = Chat(assistant)
    views = chat.respond(ChatState(), "Who founded Zorblax Analytics?")
    for view in views:
        if CURSOR in view.state.messages[-1]["content"]:
            break
    closed = []
    generation = assistant._generation_lock
    views.close()  # what Stop does to the running answer
    closed.append(generation.acquire(blocking=False))  # the LLM is given back at once
    generation.release()
    assert closed == [True]

    stopped = chat.stop(view.state)
    text = message_text(stopped.state.messages[-1]["content"])
    assert text.endswith('<span class="stopped">(stopped)</span>') and CURSOR not in text
    assert "draft" in text and stopped.answering is False
    assert stopped.state.turns == []  # a stopped answer is not history for follow-ups


def test_after_stop_the_answer_shows_nothing_more_even_a_step_already_under_way(tmp_path):
    # The page runs Stop beside the answer (Gradio cancels the answer's task on its own time): a
    # step the answer takes after Stop ran must not cover Stop's "(stopped)" with "Reading…".
    assistant = answering_assistant(tmp_path)
    chat = Chat(assistant)
    views = chat.respond(ChatState(), "Who founded Zorblax Analytics?")
    first = next(views)
    stopped = chat.stop(first.state)
    assert list(views) == []
    assert "(stopped)" in message_text(stopped.state.messages[-1]["content"])
    assert assistant.llm.calls == []  # the answer was given up before the LLM was asked
    # a question asked after the Stop is answered in full
    later = list(chat.respond(stopped.state, "Who founded Zorblax Analytics?"))
    assert later[-1].answering is False and later[-1].state.turns


def test_a_step_that_reaches_the_page_after_stop_is_covered_by_stop_again(tmp_path):
    # Gradio runs Stop beside the answer: a step the answer sent just before Stop ran can reach
    # the page (and its stored state) after Stop's view. Just after Stop the page asks again.
    assistant = answering_assistant(tmp_path)
    chat = Chat(assistant)
    views = chat.respond(ChatState(), "Who founded Zorblax Analytics?")
    late = next(views)  # "Searching the documents…", still naming the answer being written
    stopped = chat.stop(late.state)
    again = chat.after_stop(late.state)
    assert again is not None and again.answering is False
    assert message_text(again.state.messages[-1]["content"]).endswith('<span class="stopped">(stopped)</span>')
    assert again.state.answer_token == ""
    assert chat.after_stop(late.state) is None  # once: Stop's view is not kept for every later call
    # when Stop's own view won, it is shown as it is
    same = chat.after_stop(stopped.state)
    assert same.state.messages == stopped.state.messages and same.answering is False
    # an answer asked since is not touched
    asked = next(chat.respond(stopped.state, "Who founded Zorblax Analytics?"))
    assert chat.after_stop(asked.state) is None


def test_a_follow_up_is_asked_standalone_and_says_how_it_was_understood(tmp_path):
    assistant = answering_assistant(tmp_path)
    chat = Chat(assistant)
    state = list(chat.respond(ChatState(), "Who founded Zorblax Analytics?"))[-1].state
    views = list(chat.respond(state, "Where was it founded?"))
    state = views[-1].state
    assert state.turns[1]["standalone"] == "Where was Zorblax Analytics founded?"
    assert "understood as “Where was Zorblax Analytics founded?”" in state.messages[-1]["content"]
    assert re.search(r"\(#src-2-\d\)", state.messages[-1]["content"]) and len(state.sections) == 2
    # The referent was asked about the first turn.
    asked = [c for c in assistant.llm.calls if c["messages"][0]["content"] == conversation.SYSTEM]
    assert len(asked) == 1 and "Who founded Zorblax Analytics?" in asked[0]["messages"][-1]["content"]


def test_new_chat_starts_empty(tmp_path):
    view = Chat(fake_assistant(tmp_path)).new()
    assert view.state == ChatState() and view.answering is False and "src-placeholder" in view.sources


def test_answers_are_saved_as_they_happen_and_reopen_as_they_were(tmp_path):
    assistant = answering_assistant(tmp_path)
    history = History(assistant.settings.chats_path)
    chat = Chat(assistant, history)
    state = list(chat.respond(ChatState(), "Who founded Zorblax Analytics?", owner="ana"))[-1].state
    state = list(chat.respond(state, "Where was it founded?", owner="ana"))[-1].state
    (conversation,) = history.conversations("ana")
    assert state.conversation == conversation.id and conversation.title == "Who founded Zorblax Analytics?"
    assert chat.conversations() == []  # another owner's

    opened = chat.open(conversation.id, owner="ana").state
    assert opened.messages == state.messages and opened.turns == state.turns and opened.conversation == conversation.id
    # The reopened conversation goes on: a follow-up leans on its turns, and is saved in it.
    more = list(chat.respond(opened, "When was it founded?", owner="ana"))[-1].state
    assert more.turns[-1]["standalone"] == "When was Zorblax Analytics founded?"
    assert len(history.turns(conversation.id, "ana")) == 3


def test_a_reopened_answer_says_when_its_document_changed_since(tmp_path):
    assistant = answering_assistant(tmp_path)
    chat = Chat(assistant, History(assistant.settings.chats_path))
    state = list(chat.respond(ChatState(), "Who founded Zorblax Analytics?"))[-1].state
    assert "changed since" not in chat.open(state.conversation).state.messages[-1]["content"]
    (assistant.settings.docs_dir / "tea.txt").write_text("Zorblax Analytics was sold in 2040.\n", encoding="utf-8")
    view = chat.open(state.conversation)
    assert f"⚠ {CHANGED}" in view.state.messages[-1]["content"] and f"⚠ {CHANGED}" in view.sources
    assert CLAIM in view.sources  # the card shows the text as it was cited


def test_stop_saves_the_draft_and_a_question_is_kept_even_unanswered(tmp_path):
    assistant = answering_assistant(tmp_path)
    history = History(assistant.settings.chats_path)
    chat = Chat(assistant, history)
    views = chat.respond(ChatState(), "Who founded Zorblax Analytics?")
    view = next(views)  # asked: the question is saved before anything is answered
    (turn,) = history.turns(view.state.conversation)
    assert (turn.question, turn.status) == ("Who founded Zorblax Analytics?", PENDING)
    for view in views:
        if CURSOR in view.state.messages[-1]["content"]:
            break
    views.close()
    chat.stop(view.state)
    (turn,) = history.turns(view.state.conversation)
    assert turn.status == STOPPED and turn.answer == view.state.draft != ""
    assert "(stopped)" in chat.open(view.state.conversation).state.messages[-1]["content"]


def test_a_history_that_cannot_be_written_is_said_and_the_question_still_answered(tmp_path):
    assistant = answering_assistant(tmp_path)
    (tmp_path / "blocked").write_text("a file, not a folder", encoding="utf-8")
    chat = Chat(assistant, History(tmp_path / "blocked" / "chats.sqlite3"))
    state = list(chat.respond(ChatState(), "Who founded Zorblax Analytics?"))[-1].state
    reply = state.messages[-1]["content"]
    assert reply.startswith('<span class="error">⚠ this answer is not being saved: ') and CLAIM in reply
    assert state.conversation is None and len(state.turns) == 1


def test_the_picker_and_mentions_scope_the_answer_which_says_so_also_when_reopened(tmp_path):
    assistant = answering_assistant(tmp_path)
    chat = Chat(assistant, History(assistant.settings.chats_path))
    views = list(chat.respond(ChatState(), "Who founded @tea.txt Zorblax Analytics?", picked=["ships.txt"]))
    state = views[-1].state
    shown = state.messages[-1]["content"]
    # What was searched, and the question as searched (the mention taken out), above the answer.
    assert '<span class="scope">searched only 2 documents: ' in shown and CLAIM in shown
    # By title, the file name on hover.
    assert '<span title="tea.txt" lang="en">Zorblax Analytics sells weather forecasts to tea farmers' in shown
    assert "understood as “Who founded Zorblax Analytics?”" in shown
    assert "rice.md" not in views[-1].sources and "ships.txt" in shown and "tea.txt" in shown
    # The mention is no part of the question searched (nor of what a follow-up is rewritten from).
    assert state.turns[0]["standalone"] == "Who founded Zorblax Analytics?"
    assert chat.open(state.conversation).state.messages == state.messages
    unknown = list(chat.respond(state, "And @founders.pdf?"))[-1].state.messages[-1]["content"]
    assert "no indexed document matches '@founders.pdf'" in unknown


# -- the conversations sidebar (ui.chat.Sidebar) ------------------------------------------------
def sidebar_on(root, owner="ana"):
    """A Sidebar whose chat has answered one question for `owner`: (sidebar, its state)."""
    assistant = answering_assistant(root)
    chat = Chat(assistant, History(assistant.settings.chats_path))
    state = list(chat.respond(ChatState(), "Who founded Zorblax Analytics?", owner=owner))[-1].state
    return Sidebar(chat, root / "exports"), state


def test_the_sidebar_lists_the_owners_conversations_the_open_one_selected_with_its_exports(tmp_path):
    sidebar, state = sidebar_on(tmp_path)
    view = sidebar.listed(state, "ana")
    assert view.status == "" and view.confirm_delete is False and view.chat is None
    listed = view.listed
    assert [value for _, value in listed.choices] == [str(state.conversation)] == [listed.selected]
    assert listed.choices[0][0].startswith("Who founded Zorblax Analytics? · ")
    assert listed.title == "Who founded Zorblax Analytics?"
    markdown, data = listed.exports
    assert CLAIM in markdown.read_text(encoding="utf-8") and data.suffix == ".json"
    # Another user sees none of it; a new chat has nothing selected and nothing to export.
    assert sidebar.listed(state, "bo").listed == Listed([], None, "", None)
    fresh = sidebar.listed(ChatState(), "ana").listed
    assert fresh.selected is None and fresh.title == "" and fresh.exports is None and len(fresh.choices) == 1


def test_the_sidebar_opens_renames_and_says_what_it_cannot_do(tmp_path):
    sidebar, state = sidebar_on(tmp_path)
    opened = sidebar.open(str(state.conversation), ChatState(), "ana")
    assert opened.chat.state.messages == state.messages and opened.status is None and opened.listed is None
    assert "there is no conversation &#x27;x&#x27;" in sidebar.open("x", state, "ana").status
    assert "status-error" in sidebar.open(str(state.conversation), state, "bo").status  # not theirs

    renamed = sidebar.rename("Founders", state, "ana")
    assert renamed.listed.title == "Founders" and renamed.listed.choices[0][0].startswith("Founders · ")
    assert "ask a question first" in sidebar.rename("Founders", ChatState(), "ana").status


def test_deleting_a_conversation_asks_first_then_empties_the_chat(tmp_path):
    sidebar, state = sidebar_on(tmp_path)
    assert "no saved conversation" in Sidebar.ask_to_delete(ChatState()).status
    asked = Sidebar.ask_to_delete(state)
    assert asked.confirm_delete is True and "cannot be undone" in asked.status

    deleted = sidebar.delete(state, "ana")
    assert "Deleted" in deleted.status and deleted.confirm_delete is False and deleted.chat.state == ChatState()
    after = sidebar.after_delete(deleted.chat.state, "ana")
    assert after.listed.choices == [] and after.status is None  # "Deleted" stays said
    failed = sidebar.delete(state, "ana")  # already gone
    assert "status-error" in failed.status and failed.confirm_delete is False and failed.chat is None


def test_a_question_searched_in_the_documents_language_too_says_how(tmp_path):
    def translating(messages: list[dict]) -> str:
        if messages[-1]["content"].startswith("Translate this question"):
            return "Who founded the company?"
        if messages[-1]["content"].startswith("Write «"):  # the answer, in the question's language
            return "데위 카르티카"
        return reply(messages)

    chat = Chat(fake_assistant(tmp_path, reply=translating, min_similarity=0.0))
    state = list(chat.respond(ChatState(), "그 회사는 누가 세웠나요?"))[-1].state
    assert "also searched as “Who founded the company?”" in state.messages[-1]["content"]
    state = list(chat.respond(ChatState(), "Who founded Zorblax Analytics?"))[-1].state
    assert "also searched as" not in state.messages[-1]["content"]
