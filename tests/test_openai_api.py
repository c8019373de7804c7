"""The OpenAI-compatible API (ui/api.py): `/v1/chat/completions` and `/v1/models`.

The full layer runs the real server (uvicorn in a thread, on 127.0.0.1, the session's models)
and drives it with OpenAI's own Python client, as a script or Open WebUI would: an answer with
its citations, streamed with the citations in the last chunk, a refusal, a follow-up, the models
list, and a wrong key. The fast layer checks the logic around the seam (the request read into a
question and a conversation, the reply shaped from an Answer, access rules, errors) with a
scripted stand-in for the Assistant and starlette's in-process client.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from rag.assistant import NOT_FOUND, UNVERIFIED, Answer, Assistant
from rag.citations import Citation
from rag.conversation import Rewrite
from rag.errors import RagError
from rag.passages import Passage
from rag.scope import Scope
from ui.api import (
    MODEL_ID,
    SOURCES_BREAK,
    ApiAccess,
    ApiError,
    api_access,
    api_mount,
    parse_request,
    reply_text,
)

KEY = "sk-test-0123456789"


def citation(n=1) -> Citation:
    return Citation(
        n, "report.pdf", 4, "The harbour opened in 1932. It is busy.", "The harbour opened in 1932.", page=2
    )


ANSWERED = Answer("When did the harbour open?", "It opened in 1932. [1]", False, [citation()], [], "en")
REFUSED = Answer(
    "Who owns the moon?", "The documents do not say.", True, [], [], "en", reason=NOT_FOUND, answerable=0.1
)
UNCHECKED = Answer(
    "Who founded it?",
    "No checked answer could be written.",
    True,
    [],
    [],
    "en",
    reason=UNVERIFIED,
    why="the name John Schulman is in no passage",
    passage=Passage("report.pdf", 4, "The harbour opened in 1932.", "The harbour opened in 1932.", 0.5, 0.9, 2),
    unsupported=["John Schulman founded it"],
)


class ScriptedAssistant:
    """The Assistant's public API as the API uses it, answering with a given Answer."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.index = SimpleNamespace(files={"report.pdf": {"language": "en"}, "notes/plan.md": {"language": "ko"}})
        self.settings = SimpleNamespace(docs_dir=None, only=(), languages=())
        self.asked: list[tuple[str, dict]] = []
        self.histories: list[list[tuple[str, str]]] = []

    without_mentions = Assistant.without_mentions  # the real rules, on this stand-in's files
    _scope_of = Assistant._scope_of

    def standalone_question(self, history, question: str) -> Rewrite:
        self.histories.append(list(history))
        standalone = f"{question} (the harbour)" if history else question
        return Rewrite(question, standalone, "rewritten" if history else "no history")

    def ask(self, question: str, **options) -> Answer:
        self.asked.append((question, options))
        return self.answer


def api_client(assistant, access: ApiAccess | None = None):
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    return TestClient(Starlette(routes=[api_mount(assistant, access or ApiAccess())]))


# -- requests ------------------------------------------------------------------------------
def test_the_last_user_message_is_the_question_and_earlier_ones_the_conversation():
    request = parse_request(
        {
            "model": "anything",
            "messages": [
                {"role": "system", "content": "You are helpful."},
                {"role": "user", "content": "When did the harbour open?"},
                {"role": "assistant", "content": f"It opened in 1932. [1]{SOURCES_BREAK}[1] report.pdf p.2 ¶4: “…”"},
                {"role": "user", "content": [{"type": "text", "text": "Who built it?"}, {"type": "image_url"}]},
                {"role": "assistant", "content": "Nobody knows."},
                {"role": "user", "content": "And when did it close?"},
            ],
            "max_tokens": 64,
            "temperature": 0.2,
            "stream": True,
        }
    )
    assert request.question == "And when did it close?"
    # The sources lines a reply carried are not part of the answer the conversation remembers.
    assert request.history == [
        ("When did the harbour open?", "It opened in 1932. [1]"),
        ("Who built it?", "Nobody knows."),
    ]
    assert (request.stream, request.max_tokens, request.temperature, request.model) == (True, 64, 0.2, "anything")


@pytest.mark.parametrize(
    "body, message",
    [
        ([], "JSON object"),
        ({}, "messages must be a non-empty list"),
        ({"messages": "hi"}, "messages must be a non-empty list"),
        ({"messages": [{"content": "hi"}]}, "with a role"),
        ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "?"}]}, "last message"),
        ({"messages": [{"role": "user", "content": "hi"}], "stream": "yes"}, "stream must be"),
        ({"messages": [{"role": "user", "content": "hi"}], "temperature": 7}, "between 0 and 2"),
        ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": "many"}, "must be a number"),
        ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}, "between 1 and"),
        ({"messages": [{"role": "user", "content": "hi"}], "scope": ["a.pdf"]}, "scope must be an object"),
        ({"messages": [{"role": "user", "content": "hi"}], "scope": {"files": ["a.pdf"]}}, "scope must be an object"),
        ({"messages": [{"role": "user", "content": "hi"}], "scope": {"only": "a.pdf"}}, "scope.only must be a list"),
        ({"messages": [{"role": "user", "content": "hi"}], "scope": {"languages": ["kr"]}}, "unknown language 'kr'"),
    ],
)
def test_a_request_that_cannot_be_used_says_why(body, message):
    with pytest.raises(ApiError, match=message) as raised:
        parse_request(body)
    assert raised.value.status == 400


def test_bad_requests_get_400_in_openai_s_shape_and_the_server_goes_on():
    client = api_client(ScriptedAssistant(ANSWERED))
    for content, message in [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (json.dumps({"messages": [{"role": "user", "content": "   "}]}).encode(), "empty"),
        (json.dumps({"messages": [{"role": "user", "content": "x" * 5000}]}).encode(), "too long"),
    ]:
        response = client.post("/v1/chat/completions", content=content, headers={"Content-Type": "application/json"})
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert message in error["message"] and error["type"] == "invalid_request_error"
    response = client.post("/v1/chat/completions", content=b"x" * (2 << 20))
    assert response.status_code == 413
    assert client.get("/v1/models").json()["data"][0]["id"] == MODEL_ID


# -- replies -------------------------------------------------------------------------------
def test_an_answer_carries_its_citations_as_text_and_as_data():
    assistant = ScriptedAssistant(ANSWERED)
    response = api_client(assistant).post(
        "/v1/chat/completions",
        json={
            "model": MODEL_ID,
            "messages": [{"role": "user", "content": "When did the harbour open?"}],
            "max_tokens": 50,
        },
    )
    assert response.status_code == 200
    reply = response.json()
    assert reply["object"] == "chat.completion" and reply["choices"][0]["finish_reason"] == "stop"
    message = reply["choices"][0]["message"]
    assert message["content"] == (
        f"It opened in 1932. [1]{SOURCES_BREAK}[1] report.pdf p.2 ¶4: “The harbour opened in 1932.”"
    )
    assert message["citations"] == [citation().to_json()]
    assert message["abstained"] is False and message["reason"] is None and message["unsupported"] == []
    assert assistant.asked == [
        ("When did the harbour open?", {"max_tokens": 50, "temperature": None, "scope": Scope()})
    ]


def test_a_refusal_and_an_unverified_claim_are_marked_as_in_ask_json():
    assert reply_text(REFUSED) == "The documents do not say."
    for answer, reason in [(REFUSED, NOT_FOUND), (UNCHECKED, UNVERIFIED)]:
        message = (
            api_client(ScriptedAssistant(answer))
            .post("/v1/chat/completions", json={"messages": [{"role": "user", "content": answer.question}]})
            .json()["choices"][0]["message"]
        )
        assert message["abstained"] is True and message["reason"] == reason and message["citations"] == []
    # The unchecked claim is shown only as such, beside the passage it was judged by.
    assert message["unsupported"] == ["John Schulman founded it"] and message["why"] == UNCHECKED.why
    assert message["passage"]["file"] == "report.pdf"
    assert message["content"].startswith("No checked answer could be written." + SOURCES_BREAK)
    assert (
        "Not confirmed by the documents, so not given as the answer: “John Schulman founded it”" in message["content"]
    )


def test_a_follow_up_is_asked_as_the_standalone_question():
    assistant = ScriptedAssistant(ANSWERED)
    messages = [
        {"role": "user", "content": "When did the harbour open?"},
        {"role": "assistant", "content": "It opened in 1932. [1]"},
        {"role": "user", "content": "Who built it?"},
    ]
    message = api_client(assistant).post("/v1/chat/completions", json={"messages": messages}).json()
    assert assistant.histories == [[("When did the harbour open?", "It opened in 1932. [1]")]]
    assert assistant.asked[0][0] == "Who built it? (the harbour)"
    assert message["choices"][0]["message"]["question"] == "Who built it? (the harbour)"


def test_a_scope_and_mentions_limit_the_documents_and_one_matching_nothing_is_a_400():
    assistant = ScriptedAssistant(ANSWERED)
    client = api_client(assistant)
    body = {
        "messages": [{"role": "user", "content": "What does @notes/plan.md say?"}],
        "scope": {"only": ["*.pdf"], "languages": ["Korean"]},
    }
    assert client.post("/v1/chat/completions", json=body).status_code == 200
    # The mention is taken out of the question and added to the request's scope.
    assert assistant.asked == [
        (
            "What does say?",
            {"max_tokens": None, "temperature": None, "scope": Scope(("*.pdf", "notes/plan.md"), ("ko",))},
        )
    ]
    for scope, message in [
        ({"only": ["contrat.pdf"]}, "no indexed document matches 'contrat.pdf'"),
        ({"languages": ["zh"]}, "no indexed document is in Chinese"),
    ]:
        for stream in (False, True):  # a stream's 400 comes before it starts
            sent = {"messages": [{"role": "user", "content": "When?"}], "scope": scope, "stream": stream}
            response = client.post("/v1/chat/completions", json=sent)
            assert response.status_code == 400, response.text
            assert message in response.json()["error"]["message"]
    response = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "Is @x.pdf new?"}]})
    assert response.status_code == 400 and "'@x.pdf'" in response.json()["error"]["message"]
    assert len(assistant.asked) == 1


def test_a_stream_sends_the_checked_text_then_a_last_chunk_with_the_citations():
    response = api_client(ScriptedAssistant(ANSWERED)).post(
        "/v1/chat/completions", json={"messages": [{"role": "user", "content": "When?"}], "stream": True}
    )
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [line.removeprefix("data: ") for line in response.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert "".join(d.get("content", "") for d in deltas) == reply_text(ANSWERED)
    last = chunks[-1]["choices"][0]
    assert last["finish_reason"] == "stop" and last["delta"]["citations"] == [citation().to_json()]
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    assert len({c["id"] for c in chunks}) == 1


def test_a_stream_stays_alive_while_the_answer_is_written():
    import threading

    from ui.api import ChatRequest, stream_events

    written = threading.Event()

    def answer_of():
        written.wait(60)
        return ANSWERED, ANSWERED.question

    events = stream_events(answer_of, ChatRequest("When?", stream=True), keep_alive=0.01)
    assert json.loads(next(events).removeprefix("data: "))["choices"][0]["delta"]["role"] == "assistant"
    assert next(events) == ": keep-alive\n\n"  # a comment line, which clients skip
    written.set()
    rest = [event for event in events if not event.startswith(":")]
    assert rest[-1] == "data: [DONE]\n\n"
    assert json.loads(rest[-2].removeprefix("data: "))["choices"][0]["delta"]["citations"] == [citation().to_json()]


def test_an_unexpected_failure_is_a_500_without_details_and_the_server_goes_on(capsys):
    class Failing(ScriptedAssistant):
        def ask(self, question, **options):
            raise KeyError("secret internals")

    client = api_client(Failing(ANSWERED))
    response = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "When?"}]})
    assert response.status_code == 500 and "secret" not in response.text
    assert response.json()["error"]["type"] == "server_error"
    assert "secret internals" in capsys.readouterr().err  # for the server's log
    assert client.get("/v1/models").status_code == 200


# -- access --------------------------------------------------------------------------------
def test_access_follows_the_chat_s_rules():
    assert api_access("127.0.0.1", None) == (ApiAccess(), "no key needed on this machine")
    assert api_access("0.0.0.0", KEY)[0] == ApiAccess(KEY)
    assert api_access("127.0.0.1", KEY)[0] == ApiAccess(KEY)  # a key given is always asked for
    with pytest.raises(RagError, match="--api-key"):
        api_access("0.0.0.0", None)
    assert api_access("0.0.0.0", None, no_auth=True)[0] == ApiAccess()
    # The chat asks for sign-in and the API has no key: closed, not open.
    assert api_access("127.0.0.1", None, chat_auth=True)[0] == ApiAccess(None, open=False)


def test_a_key_is_required_when_set_and_a_wrong_one_is_a_401():
    client = api_client(ScriptedAssistant(ANSWERED), ApiAccess(KEY))
    question = {"messages": [{"role": "user", "content": "When?"}]}
    for headers in [{}, {"Authorization": "Bearer wrong-key-000"}, {"Authorization": f"Basic {KEY}"}]:
        response = client.post("/v1/chat/completions", json=question, headers=headers)
        assert response.status_code == 401, headers
        assert response.json()["error"]["code"] == "invalid_api_key"
        assert client.get("/v1/models", headers=headers).status_code == 401
    good = {"Authorization": f"Bearer {KEY}"}
    assert client.post("/v1/chat/completions", json=question, headers=good).status_code == 200
    assert client.get("/v1/models", headers=good).status_code == 200
    closed = api_client(ScriptedAssistant(ANSWERED), ApiAccess(None, open=False))
    response = closed.post("/v1/chat/completions", json=question, headers=good)
    assert response.status_code == 401 and "--api-key" in response.json()["error"]["message"]


# -- the real server, with OpenAI's client -------------------------------------------------
@pytest.fixture(scope="module")
def api_url(assistant):
    from harness.probes import free_port
    from ui.api import serve_api
    from ui.app import warm_up

    warm_up(assistant)
    server, url = serve_api(assistant, ApiAccess(), "127.0.0.1", free_port())
    yield url
    server.should_exit = True


def openai_client(url: str, key: str = "unused"):
    from openai import OpenAI

    return OpenAI(base_url=url, api_key=key, max_retries=0, timeout=600)


KOREAN_QUESTION = "OpenAI는 메타의 '초지능' 팀에 최소 몇 명의 연구원을 잃었나요?"


def test_openai_client_gets_an_answer_with_citations(api_url, assistant):
    client = openai_client(api_url)
    assert [m.id for m in client.models.list()] == [MODEL_ID]
    reply = client.chat.completions.create(model=MODEL_ID, messages=[{"role": "user", "content": KOREAN_QUESTION}])
    message = reply.choices[0].message
    assert message.abstained is False, message.content
    assert message.citations, message.content
    for cited in message.citations:
        assert f"[{cited['n']}]" in message.content
        paragraph = assistant.index.paragraph(cited["file"], cited["paragraph"])
        assert cited["text"] == paragraph.text and cited["quote"] in paragraph.text
        assert f"“{cited['quote']}”" in message.content  # the source line, for tools that show only text


def test_openai_client_streams_the_answer_then_the_citations(api_url):
    stream = openai_client(api_url).chat.completions.create(
        model=MODEL_ID,
        messages=[{"role": "user", "content": "Who phoned Sutskever to say OpenAI was no longer inviting him back?"}],
        stream=True,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    last = chunks[-1].choices[0]
    assert last.finish_reason == "stop"
    assert last.delta.abstained is False, text
    assert last.delta.citations and all(f"[{c['n']}]" in text for c in last.delta.citations)


def test_openai_client_gets_a_refusal_for_what_no_document_says(api_url):
    reply = openai_client(api_url).chat.completions.create(
        model=MODEL_ID, messages=[{"role": "user", "content": "What is the boiling point of liquid nitrogen on Mars?"}]
    )
    message = reply.choices[0].message
    assert message.abstained is True and message.reason in (NOT_FOUND, UNVERIFIED), message.content
    assert message.citations == []


def test_openai_client_follow_up_uses_the_earlier_messages(api_url, assistant):
    reply = openai_client(api_url).chat.completions.create(
        model=MODEL_ID,
        messages=[
            {"role": "user", "content": "Who is Mia in Brendan Gregg's post?"},
            {"role": "assistant", "content": "His hairstylist [1]."},
            {"role": "user", "content": "What feature did she like?"},
        ],
    )
    message = reply.choices[0].message
    assert "Mia" in message.question, message.question  # the follow-up, made standalone from the conversation
    index = assistant.index
    about_mia = {name for name in index.files if any("Mia" in p.text for p in index.paragraphs_of(name))}
    assert message.citations and {c["file"] for c in message.citations} <= about_mia, message.content


def test_openai_client_with_a_wrong_key_gets_a_401(assistant):
    from openai import AuthenticationError

    from harness.probes import free_port
    from ui.api import serve_api

    server, url = serve_api(assistant, ApiAccess(KEY), "127.0.0.1", free_port())
    try:
        with pytest.raises(AuthenticationError) as raised:
            openai_client(url, "sk-wrong-000000").chat.completions.create(
                model=MODEL_ID, messages=[{"role": "user", "content": "Who is Mark Chen?"}]
            )
        assert raised.value.status_code == 401 and raised.value.code == "invalid_api_key"
        assert [m.id for m in openai_client(url, KEY).models.list()] == [MODEL_ID]
    finally:
        server.should_exit = True


def test_the_chat_server_serves_the_api_on_its_port(seeds_app):
    import httpx

    url = seeds_app.rstrip("/") + "/v1"
    assert [m.id for m in openai_client(url).models.list()] == [MODEL_ID]
    response = httpx.post(f"{url}/chat/completions", content=b"{", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]["message"]


# -- rag serve -------------------------------------------------------------------------------
def test_rag_serve_refuses_a_network_host_without_a_key_and_a_port_in_use(tmp_path, monkeypatch, capsys):
    import socket

    from rag.cli import rag_main

    monkeypatch.delenv("RAG_API_KEY", raising=False)
    index = tmp_path / "index"
    assert rag_main(["serve", "--host", "0.0.0.0", "--index", str(index)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--api-key" in err and "--no-auth" in err
    assert rag_main(["serve", "--api-key", "short", "--index", str(index)]) == 1
    assert "at least 8" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert rag_main(["serve", "--port", str(taken.getsockname()[1]), "--index", str(index)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot listen on 127.0.0.1" in err and "--port" in err
    assert not index.exists()  # refused before loading or building anything
