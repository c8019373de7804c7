"""The OpenAI-compatible API: `POST /v1/chat/completions` and `GET /v1/models` over one Assistant.

So that the official `openai` client, Open WebUI or any script written for OpenAI's API can use
the assistant as a model. The last user message is the question; earlier user and assistant
messages are the conversation, used as the chat uses it (`Assistant.standalone_question`).
The reply's text is the checked answer with its [n] markers, then one line per source; the
same facts travel as data on the message (`citations`, `abstained`, `reason`, … as in
`ask --json`), and when streaming in a last chunk. A streamed reply sends the answer only once
it is checked: a draft could show a claim the check then withdraws, and deltas cannot be taken
back.

Served by `rag serve` (ui/serve.py) and, on its own port, by the chat (`rag ui`). Plain
starlette routes (starlette comes with gradio), so the same routes mount on either app.
"""

from __future__ import annotations

import json
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from rag.errors import RagError
from rag.scope import Scope
from rag.settings import is_local_host

from .signin import SignInGuard

MODEL_ID = "polyglot-rag"
PREFIX = "/v1"
MAX_BODY_BYTES = 1 << 20
MAX_TOKENS_LIMIT = 1024  # the chat's own limit for an answer
ANSWER_FIELDS = (
    "citations",
    "abstained",
    "reason",
    "why",
    "unsupported",
    "passage",
    "truncated",
    "copied",
    "translation",
    "language",
    "searched",
)
KEEP_ALIVE_SECONDS = 15.0  # a streamed reply's comment line while the answer is being written
# Between the answer and its sources in the reply's text; an assistant message sent back as
# history is cut here, so the sources do not count as the answer.
SOURCES_BREAK = "\n\n"


# -- access --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ApiAccess:
    """Who may call the API: anyone who reaches it (`key` None and `open`), those who send
    `key`, or nobody (`key` None, not `open`: the chat asks for sign-in, and the API has no key)."""

    key: str | None = field(default=None, repr=False)
    open: bool = True

    def guard(self) -> SignInGuard | None:
        # The chat's check: constant-time comparison, and a growing wait after repeated failures.
        return SignInGuard("api", self.key) if self.key else None


def api_access(host: str, key: str | None, *, chat_auth: bool = False, no_auth: bool = False) -> tuple[ApiAccess, str]:
    """Who may call the API, and that in words for the start-up message; RagError if unsafe.

    The chat's rules: this machine may call freely, anyone else needs the key. A key, once
    given, is always required; a chat that asks for sign-in keeps its API closed without one."""
    if key:
        return ApiAccess(key), "API key required"
    if chat_auth:
        return ApiAccess(None, open=False), "closed: the chat asks for sign-in, so the API needs --api-key"
    if is_local_host(host):
        return ApiAccess(), "no key needed on this machine"
    if no_auth:
        return ApiAccess(), "WARNING: no key needed, as --no-auth asked"
    raise RagError(
        f"--host {host} makes the API reachable from the network: add --api-key KEY (or RAG_API_KEY), "
        f"or --no-auth to allow it without a key"
    )


# -- requests ------------------------------------------------------------------------------
class ApiError(Exception):
    """An error the client gets in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""

    def __init__(
        self, status: int, message: str, kind: str = "invalid_request_error", code: str | None = None, param=None
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.code, self.param = status, message, kind, code, param

    def to_json(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


@dataclass(frozen=True)
class ChatRequest:
    question: str  # the last user message
    history: list[tuple[str, str]] = field(default_factory=list)  # earlier (question, answer) pairs, oldest first
    stream: bool = False
    model: str = MODEL_ID
    max_tokens: int | None = None
    temperature: float | None = None
    scope: Scope | None = None  # the documents searched (docs/scope.md); None: all


def message_text(content: object) -> str:
    """A message's text: a string, or the text parts of a list of parts (images are not read)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text") or "") for part in content if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def _number(body: dict, names: tuple[str, ...], kind: type, low: float, high: float):
    for name in names:
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)):
            raise ApiError(400, f"{name} must be a number", param=name)
        if not low <= value <= high:
            raise ApiError(400, f"{name} must be between {low:g} and {high:g}, not {value}", param=name)
        return kind(value)
    return None


def _scope(body: dict) -> Scope | None:
    """The request's `"scope": {"only": [patterns], "languages": [codes or names]}`, if any."""
    scope = body.get("scope")
    if scope is None:
        return None
    if not isinstance(scope, dict) or not set(scope) <= {"only", "languages"}:
        raise ApiError(400, 'scope must be an object with "only" and "languages" lists', param="scope")
    lists = {}
    for key in ("only", "languages"):
        value = scope.get(key) or []
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ApiError(400, f"scope.{key} must be a list of strings", param="scope")
        lists[key] = value
    try:
        return Scope.of(lists["only"], lists["languages"])
    except RagError as error:
        raise ApiError(400, str(error), param="scope") from None


def parse_request(body: object) -> ChatRequest:
    """The question, the conversation and the options of a chat completion request; ApiError(400) if unusable."""
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages must be a non-empty list", param="messages")
    turns = []
    for n, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise ApiError(400, f"messages[{n}] must be an object with a role", param="messages")
        turns.append((message["role"], message_text(message.get("content"))))
    if turns[-1][0] != "user":
        raise ApiError(400, "the last message must be the user's question", param="messages")
    question = turns[-1][1]
    history: list[tuple[str, str]] = []
    for role, text in turns[:-1]:  # system and tool messages play no part in finding passages
        if role == "user":
            history.append((text, ""))
        elif role == "assistant" and history and not history[-1][1]:
            history[-1] = (history[-1][0], text.split(SOURCES_BREAK, 1)[0])
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, "stream must be true or false", param="stream")
    model = body.get("model", MODEL_ID)
    return ChatRequest(
        question=question,
        history=[(q, a) for q, a in history if q.strip()],
        stream=stream,
        model=model if isinstance(model, str) and model else MODEL_ID,
        max_tokens=_number(body, ("max_completion_tokens", "max_tokens"), int, 1, MAX_TOKENS_LIMIT),
        temperature=_number(body, ("temperature",), float, 0.0, 2.0),
        scope=_scope(body),
    )


# -- replies -------------------------------------------------------------------------------
def reply_text(answer) -> str:
    """The message's text: the answer with its [n] markers, then its sources, one line each (for
    tools that show only text); for a refusal its notice, with the passage and claim it judged."""
    from rag import prompts

    lines = [answer.shown or ""]
    if answer.truncated:
        lines[0] += " " + prompts.truncated(answer.language)
    sources = [f"[{c.n}] {c.location}: “{c.quote}”" for c in answer.citations]
    if answer.passage is not None:
        sources.append(f"{answer.passage.location}: “{answer.passage.text}”")
    sources += [
        f"Not confirmed by the documents, so not given as the answer: “{claim}”" for claim in answer.unsupported
    ]
    return lines[0] + (SOURCES_BREAK + "\n".join(sources) if sources else "")


def answer_fields(answer, question: str) -> dict:
    """What travels as data beside the text: the `ask --json` marks of a refusal or an
    unverified claim, and the citations (file, page, ¶, paragraph text, quote)."""
    data = answer.to_json()
    # The keys of `ask --json` that describe the answer (not the retrieval's details), those
    # the Answer has: `searched`, the files a scoped question searched, where scopes exist.
    return {"question": question, **{key: data[key] for key in ANSWER_FIELDS if key in data}}


def completion(answer, request: ChatRequest, question: str, completion_id: str, created: int) -> dict:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": request.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply_text(answer), **answer_fields(answer, question)},
                "finish_reason": "length" if answer.truncated else "stop",
            }
        ],
    }


def chunk(request: ChatRequest, completion_id: str, created: int, delta: dict, finish: str | None = None) -> dict:
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": request.model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def sse(data: dict | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)}\n\n"


def stream_events(answer_of, request: ChatRequest, keep_alive: float = KEEP_ALIVE_SECONDS) -> Iterator[str]:
    """The server-sent events of a streamed reply: the role at once, the checked text when the
    answer is done, then a last chunk carrying the citations and marks, then [DONE].
    `answer_of()` answers (and waits its turn for the LLM) in a thread of its own, so nothing
    is held across a yield; while it works, a comment line every `keep_alive` seconds keeps
    proxies from closing a connection that seems idle (clients skip comments)."""
    from concurrent.futures import ThreadPoolExecutor, TimeoutError

    completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    yield sse(chunk(request, completion_id, created, {"role": "assistant", "content": ""}))
    with ThreadPoolExecutor(1, thread_name_prefix="api-answer") as pool:
        answering = pool.submit(answer_of)
        while True:
            try:
                answer, question = answering.result(timeout=keep_alive)
                break
            except TimeoutError:
                yield ": keep-alive\n\n"
            except ApiError as error:
                yield sse(error.to_json())
                return
    text = reply_text(answer)
    cut = text.find(SOURCES_BREAK)
    for piece in (text,) if cut < 0 else (text[:cut], text[cut:]):
        yield sse(chunk(request, completion_id, created, {"content": piece}))
    finish = "length" if answer.truncated else "stop"
    yield sse(chunk(request, completion_id, created, answer_fields(answer, question), finish))
    yield sse("[DONE]")


def models() -> dict:
    return {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "polyglot-rag"}]}


# -- the routes ----------------------------------------------------------------------------
def _error_response(error: ApiError):
    from starlette.responses import JSONResponse

    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    return JSONResponse(error.to_json(), status_code=error.status, headers=headers)


def _check_key(request, access: ApiAccess, guard: SignInGuard | None) -> None:
    if guard is None:
        if access.open:
            return
        raise ApiError(
            401, "this server's API is closed: start it with --api-key KEY to use it", code="invalid_api_key"
        )
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not guard("api", presented.strip()):
        raise ApiError(401, "a wrong or missing API key (send Authorization: Bearer KEY)", code="invalid_api_key")


def api_mount(assistant, access: ApiAccess):
    """The API as one starlette Mount at /v1, for `rag serve`'s app or the chat's."""
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Mount, Route

    from rag.assistant import clean_question

    guard = access.guard()

    def answering(step):
        """`step`'s result; ApiError for what the client must change, and a 500 for the unexpected."""
        try:
            return step()
        except RagError as error:
            raise ApiError(400, str(error)) from None
        except Exception as error:  # keep serving; the details go to the server log only
            traceback.print_exc()
            raise ApiError(
                500, f"unexpected error ({type(error).__name__}); see the server log", "server_error"
            ) from None

    def scoped(request: ChatRequest) -> tuple[str, Scope]:
        """The question without its `@file` mentions, and what it searches: the request's scope
        and the mentions, taken out before a follow-up is rewritten, as in the chat. Checked
        here, so that a scope matching nothing is a 400 before a stream starts."""

        def step():
            question, scope = assistant.without_mentions(request.question, request.scope)
            scope.resolve(assistant.index.files, assistant.settings.docs_dir)
            return question, scope

        return answering(step)

    def answer(request: ChatRequest, question: str, scope: Scope) -> tuple[object, str]:
        """(Answer, the question as searched)."""

        def step():
            rewrite = assistant.standalone_question(request.history, question)
            options = {"max_tokens": request.max_tokens, "temperature": request.temperature, "scope": scope}
            return assistant.ask(rewrite.standalone, **options), rewrite.standalone

        return answering(step)

    async def chat_completions(http_request):
        try:
            _check_key(http_request, access, guard)
            if int(http_request.headers.get("content-length") or 0) > MAX_BODY_BYTES:
                raise ApiError(413, f"the request is larger than {MAX_BODY_BYTES // 1024} KB")
            raw = await http_request.body()
            if len(raw) > MAX_BODY_BYTES:
                raise ApiError(413, f"the request is larger than {MAX_BODY_BYTES // 1024} KB")
            try:
                body = json.loads(raw)
            except (ValueError, UnicodeDecodeError) as error:
                raise ApiError(400, f"the request body is not valid JSON ({error})") from None
            request = parse_request(body)
            try:
                clean_question(request.question)  # before a stream starts: a bad question is a 400
            except RagError as error:
                raise ApiError(400, str(error), param="messages") from None
            question, scope = await run_in_threadpool(scoped, request)
            if request.stream:
                return StreamingResponse(
                    stream_events(lambda: answer(request, question, scope), request),
                    media_type="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
                )
            found, question = await run_in_threadpool(answer, request, question, scope)
            return JSONResponse(completion(found, request, question, f"chatcmpl-{uuid.uuid4().hex}", int(time.time())))
        except ApiError as error:
            return _error_response(error)

    async def list_models(http_request):
        try:
            _check_key(http_request, access, guard)
        except ApiError as error:
            return _error_response(error)
        return JSONResponse(models())

    return Mount(
        PREFIX,
        routes=[
            Route("/chat/completions", chat_completions, methods=["POST"]),
            Route("/models", list_models, methods=["GET"]),
        ],
    )


def mount_on(app, assistant, access: ApiAccess) -> None:
    """Serve the API from an app that already runs (the chat's): its routes go first, before
    any catch-all of the app's own."""
    app.router.routes.insert(0, api_mount(assistant, access))


def api_server(assistant, access: ApiAccess, host: str, port: int):
    """The API alone, ready to run: (uvicorn server, its listening socket, base URL). The socket
    is bound here, so that a port in use is a one-line error before anything is served."""
    import socket

    import uvicorn
    from starlette.applications import Starlette

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listening = socket.socket(family, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind((host.strip("[]"), port))
    except OSError as error:
        listening.close()
        raise RagError(f"cannot listen on {host}:{port} ({error.strerror or error}); choose another --port") from None
    app = Starlette(routes=[api_mount(assistant, access)])
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    return server, listening, f"http://{shown}:{port}{PREFIX}"


def serve_api(assistant, access: ApiAccess, host: str, port: int):
    """Serve the API alone in a background thread: (uvicorn server, base URL). `server.should_exit
    = True` stops it."""
    server, listening, url = api_server(assistant, access, host, port)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, name="api-server", daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        time.sleep(0.05)
    if not server.started:
        raise RagError(f"the API server on {host}:{port} did not start; see the log above")
    return server, url
