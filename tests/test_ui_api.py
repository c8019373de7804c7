"""The chat UI as a server: its `/ask` API, document upload and removal, exposure.

A real app (real models, real files) runs on a free localhost port in background threads
and is driven through gradio_client and plain HTTP, as a script or an attacker would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from harness.probes import free_port
from rag.errors import RagError

from .conftest import seeds_with_index

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"

# Same-language, short, factual: answerable by the default 0.5B model.
KOREAN_QUESTION = "OpenAI는 메타의 '초지능' 팀에 최소 몇 명의 연구원을 잃었나요?"
# A fact that is in no seed document.
NEW_FACT = (
    "Zorblax Analytics is a fictional company founded in Bandung in 2031 by Dewi Kartika.\n"
    "Zorblax Analytics employs 412 people and sells weather forecasts to tea farmers.\n"
)
NEW_FACT_QUESTION = "Who founded Zorblax Analytics?"
UPLOAD_LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def library_app(tmp_path_factory, seeds_index, shared_assistant):
    """The app on a writable copy of the seeds and their index, with a small upload limit."""
    from ui.app import UiOptions, serve, warm_up

    root = tmp_path_factory.mktemp("ui-library")
    docs, index = seeds_with_index(root, seeds_index)
    assistant = shared_assistant(docs_dir=docs, index_dir=index)
    warm_up(assistant)
    demo, url = serve(assistant, UiOptions(max_upload_bytes=UPLOAD_LIMIT), port=free_port())
    yield SimpleNamespace(url=url, docs=docs, root=root, assistant=assistant)
    demo.close()


def client(url: str, **options):
    from gradio_client import Client

    return Client(url, verbose=False, **options)


def upload(url: str, *paths: Path, replace: bool = False) -> str:
    """Upload files through the app's upload endpoint; the status message (HTML)."""
    from gradio_client import handle_file

    return status_of(client(url).predict([handle_file(str(p)) for p in paths], replace, api_name="/upload_documents"))


def remove(url: str, name: str) -> str:
    """Remove a document through the app's removal endpoint; the status message (HTML)."""
    return status_of(client(url).predict(name, api_name="/remove_document"))


def delete(url: str, name: str, confirmation: str) -> str:
    """Delete a file through the app's endpoint, `confirmation` naming it; the status message (HTML)."""
    return status_of(client(url).predict(name, confirmation, api_name="/delete_document"))


def status_of(outputs) -> str:
    """The documents panel's status line among an endpoint's outputs."""
    return next(o for o in outputs if isinstance(o, str) and 'class="status' in o)


# -- /ask ----------------------------------------------------------------------------------
def test_ask_endpoint_answers_a_korean_question_with_real_citations(seeds_app, assistant):
    result = client(seeds_app).predict(KOREAN_QUESTION, api_name="/ask")

    # The same object `ask --json` prints.
    assert set(result) == set(assistant.ask(KOREAN_QUESTION, retrieve_only=True).to_json())
    assert result["language"] == "ko"
    assert not result["abstained"], result["answer"]
    assert result["citations"], f"no citation in the answer {result['answer']!r}"
    for citation in result["citations"]:
        assert citation["file"] in assistant.index.files
        assert 1 <= citation["paragraph"] <= assistant.index.files[citation["file"]]["paragraphs"]
        assert citation["text"] == assistant.index.paragraph(citation["file"], citation["paragraph"]).text
        assert f"[{citation['n']}]" in result["answer"]


@pytest.mark.parametrize("question, message", [("", "empty"), ("  \n\t ", "empty"), ("x" * 5000, "too long")])
def test_ask_endpoint_gives_a_clean_error_and_keeps_serving(seeds_app, question, message):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as raised:
        client(seeds_app).predict(question, api_name="/ask")
    assert message in str(raised.value)
    assert "Traceback" not in str(raised.value)
    assert client(seeds_app).view_api(print_info=False, return_format="dict")  # still serving


def test_two_users_at_once_are_both_answered(seeds_app):
    questions = [
        "Who phoned Sutskever to say OpenAI was no longer inviting him back?",
        "Codex 출시를 이끈 핵심 인력 중 엔지니어는 몇 명이었나요?",
    ]
    results: dict[str, object] = {}

    def ask(question: str) -> None:
        try:
            results[question] = client(seeds_app).predict(question, api_name="/ask")
        except Exception as error:  # reported below
            results[question] = error

    threads = [threading.Thread(target=ask, args=(q,)) for q in questions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    for question in questions:
        assert isinstance(results.get(question), dict), results.get(question)
        assert results[question]["answer"], results[question]


# -- documents -----------------------------------------------------------------------------
def test_uploaded_file_makes_its_fact_answerable_and_can_be_removed(library_app, tmp_path):
    new = tmp_path / "zorblax.txt"
    new.write_text(NEW_FACT, encoding="utf-8")

    status = upload(library_app.url, new)
    assert "Added zorblax.txt" in status, status
    assert (library_app.docs / "zorblax.txt").read_text(encoding="utf-8") == NEW_FACT
    assert library_app.assistant.index.files["zorblax.txt"]["paragraphs"] == 2

    result = client(library_app.url).predict(NEW_FACT_QUESTION, api_name="/ask")
    assert any(hit["file"] == "zorblax.txt" for hit in result["retrieved"]), result["retrieved"]
    assert any(c["file"] == "zorblax.txt" for c in result["citations"]), (
        f"the answer {result['answer']!r} does not cite the uploaded file"
    )
    assert "Dewi Kartika" in result["answer"]

    assert "Removed zorblax.txt from the index" in remove(library_app.url, "zorblax.txt")
    assert (library_app.docs / "zorblax.txt").read_text(encoding="utf-8") == NEW_FACT  # removal keeps files
    assert "zorblax.txt" not in library_app.assistant.index.files
    # The chat uploaded it: it may be deleted, when the confirmation names it.
    assert "status-error" in delete(library_app.url, "zorblax.txt", "other.txt")
    assert (library_app.docs / "zorblax.txt").exists()
    assert "Deleted the file zorblax.txt" in delete(library_app.url, "zorblax.txt", "zorblax.txt")
    assert not (library_app.docs / "zorblax.txt").exists()
    # A seed is the user's own file: removed from the index, never deleted.
    seed = "003_15cb4250a3f963ee.txt"
    assert "Removed" in remove(library_app.url, seed)
    assert "status-error" in delete(library_app.url, seed, seed)
    assert (library_app.docs / seed).exists()
    assert "back in the index" in status_of(client(library_app.url).predict(seed, api_name="/undo_remove"))
    assert seed in library_app.assistant.index.files


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("binary.txt", b"\x7fELF\x02\x01\x01\x00\x00\x00" + bytes(range(256)) * 4, "binary"),
        ("latin1.txt", "Café crème à Zürich.\n".encode("latin-1"), "not UTF-8"),
        ("empty.md", b"  \n\n", "empty"),
        (".hidden.txt", b"A hidden file.\n", "hidden"),
        ("000_25ef5ea761165839.txt", b"Replacing a seed without asking.\n", "already exists"),
    ],
)
def test_bad_uploads_are_rejected_with_a_message(library_app, tmp_path, name, content, message):
    before = {p.name: p.read_bytes() for p in library_app.docs.iterdir()}
    bad = tmp_path / name
    bad.write_bytes(content)

    status = upload(library_app.url, bad)

    assert "Rejected" in status and message in status, status
    assert {p.name: p.read_bytes() for p in library_app.docs.iterdir()} == before


def test_upload_type_and_size_limits_hold_on_the_server(library_app, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    program = tmp_path / "tool.exe"
    program.write_bytes(b"MZ\x90\x00" + bytes(1000))
    with pytest.raises(AppError, match="file type"):
        client(library_app.url).predict([handle_file(str(program))], False, api_name="/upload_documents")

    # Too large: refused by the server itself, whatever the browser checked.
    response = httpx.post(
        f"{library_app.url}gradio_api/upload",
        files=[("files", ("large.txt", b"word " * (UPLOAD_LIMIT // 4), "text/plain"))],
    )
    assert response.status_code == 413, response.text
    assert not (library_app.docs / "large.txt").exists()


def test_uploads_cannot_escape_the_documents_folder(library_app, tmp_path):
    # A crafted file name with a path: stored under its plain name, inside the folder.
    response = httpx.post(
        f"{library_app.url}gradio_api/upload",
        files=[("files", ("../../escape.txt", b"Escape test about Zzyzx Corp.\n", "text/plain"))],
    )
    assert response.status_code == 200
    path = response.json()[0]
    status = status_of(
        client(library_app.url).predict(
            [{"path": path, "orig_name": "../../escape.txt", "meta": {"_type": "gradio.FileData"}}],
            False,
            api_name="/upload_documents",
        )
    )
    assert not (library_app.root / "escape.txt").exists() and not (library_app.root.parent / "escape.txt").exists()
    if "Added" in status:
        assert (library_app.docs / "escape.txt").is_file()
        assert "Removed" in remove(library_app.url, "escape.txt")
        assert "Deleted" in delete(library_app.url, "escape.txt", "escape.txt")

    # A server path instead of an upload: refused, nothing copied.
    secret = tmp_path / "secret.txt"
    secret.write_text("The server's secret about Quuxcorp.\n", encoding="utf-8")
    call = f"{library_app.url}gradio_api/call/upload_documents"
    event = httpx.post(
        call,
        json={
            "data": [[{"path": str(secret), "orig_name": "secret.txt", "meta": {"_type": "gradio.FileData"}}], False]
        },
    ).json()
    with httpx.stream("GET", f"{call}/{event['event_id']}", timeout=120) as stream:
        events = [line for line in stream.iter_lines() if line.startswith("event:")]
    assert "event: error" in events, events
    assert not (library_app.docs / "secret.txt").exists()

    # Removal by a name that leads outside the folder.
    for name in ["../index/CURRENT", "/etc/hostname.txt", "..%2Fescape.txt", ""]:
        assert "status-error" in remove(library_app.url, name), name
    assert (library_app.root / "index" / "CURRENT").exists()


def test_library_checks_names_sizes_and_contents(tmp_path):
    from rag import library

    docs = tmp_path / "docs"
    docs.mkdir()
    (tmp_path / "outside.txt").write_text("outside\n")
    for name in [
        "../x.txt",
        "a/b.txt",
        "..\\x.txt",
        ".env.txt",
        "x.exe",
        "x",
        "x.txt\x00.md",
        "x<y>.txt",
        "x" * 300 + ".txt",
        " x.txt",
        "",
        ".",
        "..",
    ]:
        with pytest.raises(RagError):
            library.add_document(docs, name, b"Some text.\n")
    with pytest.raises(RagError, match="larger than"):
        library.add_document(docs, "big.txt", b"a" * 2000, max_bytes=1000)
    assert library.add_document(docs, "Über 한국어 文档.md", b"Text.\n") == "Über 한국어 文档.md"
    with pytest.raises(RagError, match="already exists"):
        library.add_document(docs, "Über 한국어 文档.md", b"Other text.\n")
    assert library.add_document(docs, "Über 한국어 文档.md", b"Other text.\n", replace=True)
    assert (docs / "Über 한국어 文档.md").read_bytes() == b"Other text.\n"
    with pytest.raises(RagError, match="same content"):
        library.add_document(
            docs,
            "copy.txt",
            b"Same.\n",
            known={"orig.txt": {"sha256": __import__("hashlib").sha256(b"Same.\n").hexdigest()}},
        )
    assert sorted(p.name for p in docs.iterdir()) == ["Über 한국어 文档.md"]  # no temporary files left

    (docs / "link.txt").symlink_to(tmp_path / "outside.txt")
    library.remove_document(docs, "link.txt")
    assert (tmp_path / "outside.txt").exists()  # the link went, not its target
    for name in ["../outside.txt", "/etc/passwd", "sub/../../outside.txt", ".hidden.txt", "notes.py"]:
        with pytest.raises(RagError):
            library.remove_document(docs, name)
    with pytest.raises(RagError, match="not in the index"):
        library.remove_document(docs, "Über 한국어 文档.md", known={"other.txt"})
    library.remove_document(docs, "Über 한국어 文档.md")
    assert not list(docs.iterdir())


# -- exposure ------------------------------------------------------------------------------
@pytest.mark.full
def test_non_local_host_is_refused_without_auth(tmp_path):
    command = [
        sys.executable,
        "-c",
        "import sys; from rag.cli import rag_main; sys.exit(rag_main())",
        "ui",
        "--host",
        "0.0.0.0",
        "--port",
        str(free_port()),
        "--index",
        str(tmp_path / "index"),
    ]
    env = {k: v for k, v in os.environ.items() if k != "RAG_UI_AUTH"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert result.returncode == 1
    assert "--auth" in result.stderr and "--no-auth" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "index").exists()  # refused before loading anything


def test_exposure_messages_and_auth_format():
    from ui.app import exposure, parse_auth

    assert exposure("127.0.0.1", None, False) == "this machine only"
    assert exposure("localhost", None, False) == "this machine only"
    for loopback in ["127.1", "127.0.0.2", "0x7f.1", "2130706433", "::1", "[::1]"]:  # forms the resolver accepts
        assert exposure(loopback, None, False) == "this machine only", loopback
    for network in ["0.0.0.0", "0", "10.1", "127.1 evil.example", "example.com"]:
        with pytest.raises(RagError, match="reachable from the network"):
            exposure(network, None, False)
    assert "sign-in required" in exposure("0.0.0.0", ("alice", "pw"), False)
    assert "WITHOUT sign-in" in exposure("192.168.1.5", None, True)
    with pytest.raises(RagError):
        exposure("::", None, False)
    with pytest.raises(RagError):
        exposure("0.0.0.0", ("alice", "pw"), True)
    assert parse_auth("alice:pa:ss") == ("alice", "pa:ss")
    for bad in ["alice", ":pw", "alice:"]:
        with pytest.raises(RagError):
            parse_auth(bad)


def test_auth_protects_the_app(assistant):
    from gradio_client.exceptions import AppError

    from ui.app import UiOptions, serve

    demo, url = serve(assistant, UiOptions(read_only=True), port=free_port(), auth=("alice", "s3cret"))
    try:
        assert httpx.get(f"{url}config").status_code in (401, 403)
        with pytest.raises(Exception):
            client(url, auth=("alice", "wrong"))
        with pytest.raises(AppError, match="empty"):  # signed in: the app answers (with an error)
            client(url, auth=("alice", "s3cret")).predict(" ", api_name="/ask")
        # Guessing is braked: after 5 failures in a row even the right password waits 1 s.
        sign_in = lambda password: httpx.post(f"{url}login", data={"username": "alice", "password": password})
        assert [sign_in(f"guess{n}").status_code for n in range(5)] == [400] * 5
        assert sign_in("s3cret").status_code == 400
        time.sleep(1.1)
        assert sign_in("s3cret").status_code == 200
    finally:
        demo.close()


def test_sign_in_guessing_is_braked_by_a_growing_wait():
    from ui.signin import FREE_FAILURES, MAX_WAIT_SECONDS, SignInGuard

    now = [0.0]
    logged = []
    guard = SignInGuard("alice", "s3cret", clock=lambda: now[0], log=logged.append)
    assert guard("alice", "s3cret")
    assert not guard("alice", "wrong") and not guard("bob", "s3cret")
    assert guard("alice", "s3cret")  # a success resets the count
    for _ in range(FREE_FAILURES):
        assert not guard("alice", "guess")
    for wait in [1, 2, 4, 8, 16, 32, MAX_WAIT_SECONDS, MAX_WAIT_SECONDS]:
        now[0] += wait - 0.5
        assert not guard("alice", "s3cret")  # refused during the wait, even with the right password
        now[0] += 0.5
        assert not guard("alice", "guess")  # the wait is over: a wrong guess counts, and the next wait grows
    assert logged[:2] == [
        f"sign-in: {FREE_FAILURES} failed attempts in a row; all refused for 1 s",
        f"sign-in: {FREE_FAILURES + 1} failed attempts in a row; all refused for 2 s",
    ]
    now[0] += MAX_WAIT_SECONDS
    assert guard("alice", "s3cret")
    for _ in range(FREE_FAILURES - 1):  # after a success, the free attempts are back
        assert not guard("alice", "guess")
    assert guard("alice", "s3cret")
