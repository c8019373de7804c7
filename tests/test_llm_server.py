"""`--llm-url`: the LLM behind an OpenAI-compatible HTTP server instead of in this process.

The real test starts `python -m llama_cpp.server` with the default GGUF on a free localhost
port and asks through `ask --llm-url`, as a user would. Small stand-in servers (standard
library) check the protocol details and the errors: refused connection, HTTP error,
silence, an error event in the stream.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest

from harness.probes import free_port
from rag.errors import RagError
from rag.llm import OpenAICompatibleLLM

from .conftest import ROOT, SEEDS
from .test_cli import assert_one_line_error, run

# Same-language, short, factual: answerable by the default 0.5B model (as in test_ui_api).
KOREAN_QUESTION = "OpenAI는 메타의 '초지능' 팀에 최소 몇 명의 연구원을 잃었나요?"
MESSAGES = [{"role": "user", "content": "Is the sky blue? Answer yes or no."}]


# -- a stand-in server ---------------------------------------------------------------------
class FakeServer:
    """Answers every POST with `reply(path, body) -> (status, content type, chunks)`."""

    def __init__(self, reply) -> None:
        self.requests: list[tuple[str, dict]] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.requests.append((self.path, body))
                status, content_type, chunks = reply(self.path, body)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Connection", "close")
                self.end_headers()
                for chunk in chunks:
                    self.wfile.write(chunk.encode("utf-8"))
                    self.wfile.flush()

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def sse(*events: object) -> list[str]:
    return [": ping\n\n"] + [f"data: {json.dumps(e) if not isinstance(e, str) else e}\n\n" for e in events]


def delta(text: str) -> dict:
    return {"choices": [{"index": 0, "delta": {"content": text}}]}


@pytest.fixture
def fake():
    servers = []

    def start(reply) -> FakeServer:
        servers.append(FakeServer(reply))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_streams_pieces_and_sends_the_grammar(fake):
    server = fake(
        lambda path, body: (
            200,
            "text/event-stream",
            sse(
                {"choices": [{"delta": {"role": "assistant"}}]},
                delta("7 "),
                delta("weeks [1]"),
                {"choices": [{"delta": {}, "finish_reason": "stop"}]},
                "[DONE]",
            ),
        )
    )
    llm = OpenAICompatibleLLM(server.url + "/v1/")
    pieces = list(llm.stream(MESSAGES, 12, 0.0, grammar='root ::= "yes" | "no"'))
    assert pieces == ["7 ", "weeks [1]"]
    path, body = server.requests[0]
    assert path == "/v1/chat/completions"
    assert body["messages"] == MESSAGES and body["stream"] is True
    assert body["max_tokens"] == 12 and body["temperature"] == 0.0
    assert body["grammar"] == 'root ::= "yes" | "no"'
    list(llm.stream(MESSAGES, 12, 0.0))
    assert "grammar" not in server.requests[1][1]


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9", "http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1/chat/completions"]
)
def test_the_url_may_name_the_server_or_its_endpoint(url):
    assert OpenAICompatibleLLM(url).endpoint == "http://127.0.0.1:9/v1/chat/completions"


@pytest.mark.parametrize("url", ["ftp://127.0.0.1", "localhost:8080", "", "http://"])
def test_a_url_that_is_not_http_is_refused(url):
    with pytest.raises(RagError, match="must be an http"):
        OpenAICompatibleLLM(url)


def test_refused_connection_is_a_clear_error():
    llm = OpenAICompatibleLLM(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(RagError, match="cannot reach the LLM server .*connection refused"):
        list(llm.stream(MESSAGES, 8, 0.0))


def test_http_error_carries_the_servers_message(fake):
    server = fake(
        lambda path, body: (
            400,
            "application/json",
            [json.dumps({"error": {"message": "Requested tokens exceed context window"}})],
        )
    )
    with pytest.raises(RagError, match="HTTP 400: Requested tokens exceed context window"):
        list(OpenAICompatibleLLM(server.url).stream(MESSAGES, 8, 0.0))


def test_error_event_in_the_stream_is_a_clear_error(fake):
    server = fake(
        lambda path, body: (200, "text/event-stream", sse(delta("partial"), {"error": {"message": "model crashed"}}))
    )
    with pytest.raises(RagError, match="failed: model crashed"):
        list(OpenAICompatibleLLM(server.url).stream(MESSAGES, 8, 0.0))


def test_a_silent_server_times_out(fake):
    def silent(path, body):
        time.sleep(3)
        return 200, "text/event-stream", sse("[DONE]")

    server = fake(silent)
    started = time.perf_counter()
    with pytest.raises(RagError, match="did not answer within 0.5 s|stopped sending for 0.5 s"):
        list(OpenAICompatibleLLM(server.url, timeout=0.5).stream(MESSAGES, 8, 0.0))
    assert time.perf_counter() - started < 2.5


def test_tokens_are_counted_by_the_server(fake):
    server = fake(
        lambda path, body: (
            (404, "application/json", ['{"detail": "Not Found"}'])
            if path == "/tokenize"
            else (200, "application/json", [json.dumps({"tokens": [1, 2, 3]})])
        )
    )
    assert OpenAICompatibleLLM(server.url).count_tokens("a b c") == 3


def test_cli_refused_connection_is_a_one_line_error(seeds_index):
    status, stdout, stderr = run(
        "ask",
        "--docs",
        str(SEEDS),
        "--index",
        str(seeds_index),
        "--llm-url",
        f"http://127.0.0.1:{free_port()}",
        KOREAN_QUESTION,
    )
    assert_one_line_error(status, stderr, "cannot reach the LLM server")


# -- the real server -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def llama_server(tmp_path_factory) -> Iterator[str]:
    """`python -m llama_cpp.server` with the default GGUF on a free localhost port."""
    pytest.importorskip("sse_starlette", reason="the llama-cpp-python server extra is not installed")
    from models.provision import provision
    from rag.settings import load_settings, physical_cores

    settings = load_settings(environ={})
    model = provision(settings.llm_model, settings.models_dir, lambda message: None)
    port = free_port()
    threads = str(physical_cores())
    # A file, not a pipe: the server logs the whole GGUF metadata at start-up, and a pipe
    # nobody reads fills up and blocks it before it listens.
    log = (tmp_path_factory.mktemp("llama_server") / "stderr.log").open("w+")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "2048",
            "--n_threads",
            threads,
            "--n_threads_batch",
            threads,
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
        cwd=ROOT,
        env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if server.poll() is not None:
                log.seek(0)
                pytest.fail(f"llama_cpp.server exited with {server.returncode}: {log.read()[-2000:]!r}")
            try:
                with urllib.request.urlopen(f"{url}/v1/models", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("llama_cpp.server did not start within 180 s")
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


@pytest.mark.slow
def test_ask_answers_with_a_citation_through_llama_cpp_server(llama_server, seeds_index):
    status, stdout, stderr = run(
        "ask", "--json", "--docs", str(SEEDS), "--index", str(seeds_index), "--llm-url", llama_server, KOREAN_QUESTION
    )
    assert status == 0, stderr
    answer = json.loads(stdout)
    assert not answer["abstained"], answer["answer"]
    assert answer["citations"], f"no citation in {answer['answer']!r}"
    assert all(f"[{c['n']}]" in answer["answer"] for c in answer["citations"])
    assert "8" in answer["answer"], answer["answer"]  # the seeds say: at least 8 researchers


@pytest.mark.slow
def test_the_server_applies_the_grammar(llama_server):
    llm = OpenAICompatibleLLM(llama_server)
    text = "".join(
        llm.stream(
            [{"role": "user", "content": "Write a long poem about the sea."}], 8, 0.0, grammar='root ::= "yes" | "no"'
        )
    )
    assert text in ("yes", "no")
    assert llm.count_tokens("hello world") >= 2
