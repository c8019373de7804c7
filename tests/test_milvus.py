"""The Milvus store against a real milvus-lite server process over gRPC (the client path a
cluster uses) and against milvus-lite's embedded .db file: same rows and rankings as the
FAISS store, incremental updates, a killed build, a server that goes away."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rag.chunking import ChunkingSettings
from rag.errors import RagError
from rag.keywords import KeywordIndex, query_vector
from rag.milvus_store import write_milvus
from rag.retrieval import Retriever
from rag.settings import load_settings
from rag.stores import open_store, update_store

from .conftest import ROOT, SEEDS
from .fakes import FakeEmbedder, paged_documents
from .test_cli import assert_one_line_error, run

CHUNKING = ChunkingSettings(128, 16)
QUESTIONS = [
    "Who is Mark Chen?",
    "인도네시아 기사에 따르면 OpenAI의 테스트는 GPU에서 몇 분 걸리나요?",
    "根据韩文文章，谁发布了新模型？",
    "Berapa lama tes OpenAI di GPU?",
]


class MilvusServer:
    """`milvus-lite server` in its own process, on a free loopback port."""

    def __init__(self, data_dir: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "milvus-lite"),
                "server",
                "--data-dir",
                str(data_dir),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                assert self.process.poll() is None, "milvus-lite server exited at start"
                time.sleep(0.1)
        self.stop()
        raise AssertionError("milvus-lite server did not start listening")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def milvus_server(tmp_path):
    server = MilvusServer(tmp_path / "milvus-data")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def embedder(assistant):
    return assistant.embedder


def small_docs(folder: Path) -> Path:
    folder.mkdir()
    (folder / "a.txt").write_text(
        "The harbour bridge opened in 1932.\nIt carries eight lanes of traffic.\n", encoding="utf-8"
    )
    (folder / "b.md").write_text("서울의 지하철은 1974년에 개통되었다.\n노선은 스물세 개다.\n", encoding="utf-8")
    return folder


def settings_for(uri: str, docs: Path):
    return load_settings(environ={}, docs_dir=docs, store="milvus", milvus_uri=uri)


def generations(store) -> list[str]:
    return sorted(n for n in store.client.list_collections() if not n.endswith("_meta"))


def test_sparse_vectors_give_the_bm25_scores_of_the_keyword_index():
    texts = [p.read_text(encoding="utf-8") for p in sorted(SEEDS.iterdir())]
    chunks = [line for text in texts for line in text.splitlines() if line.strip()]
    index = KeywordIndex.build(chunks)
    vectors = index.document_vectors()
    for question in QUESTIONS + ["830.000 830,000 OpenAI OpenAI"]:
        query = query_vector(question)
        expected = index.scores(question)
        got = np.array([sum(w * query.get(d, 0.0) for d, w in v.items()) for v in vectors])
        assert expected.max() > 0
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_build_reload_update_and_delete_over_grpc_match_the_faiss_store(milvus_server, docs_copy, assistant, embedder):
    settings = settings_for(milvus_server.uri, docs_copy)
    built, report = update_store(settings, embedder, CHUNKING)
    assert report.rebuilt_reason == "no index yet" and len(report.embedded_files) == 5

    faiss = assistant.index  # the same seeds, in the FAISS store
    store = open_store(settings)  # a fresh reader of the live generation
    assert store.collection == built.collection
    assert store.files == faiss.files and store.chunk_count == faiss.chunk_count
    assert store.chunks_at(list(range(store.chunk_count))) == faiss.chunks
    first = faiss.chunks[7]
    assert store.paragraph(first.file, first.first_piece) == faiss.paragraph(first.file, first.first_piece)
    assert store.paragraphs_of(first.file) == faiss.paragraphs_of(first.file)
    for question in QUESTIONS:
        query = embedder.encode_queries([question])[0]
        for mode in ("dense", "keyword", "hybrid"):
            on_milvus = Retriever(store, embedder).search(question, 8, mode, query)
            on_faiss = Retriever(faiss, embedder).search(question, 8, mode, query)
            assert [h.chunk for h in on_milvus] == [h.chunk for h in on_faiss], (question, mode)
            np.testing.assert_allclose([h.score for h in on_milvus], [h.score for h in on_faiss], atol=1e-4)

    unchanged, report = update_store(settings, embedder, CHUNKING)
    assert not report.changed and unchanged.collection == store.collection

    changed = docs_copy / "003_15cb4250a3f963ee.txt"
    changed.write_text(
        changed.read_text(encoding="utf-8") + "\n추가된 문단: 새로운 사실이 있습니다.\n", encoding="utf-8"
    )
    (docs_copy / "004_0d217c6e9b2bf852.txt").unlink()
    after, report = update_store(settings, embedder, CHUNKING)
    assert report.embedded_files == ["003_15cb4250a3f963ee.txt"]
    assert report.removed_files == ["004_0d217c6e9b2bf852.txt"]
    assert report.chunks_embedded == after.files["003_15cb4250a3f963ee.txt"]["chunks"]
    everything = after.chunks_at(list(range(after.chunk_count)))
    assert "004_0d217c6e9b2bf852.txt" not in {c.file for c in everything}
    assert after.paragraphs_of("003_15cb4250a3f963ee.txt")[-1].text == "추가된 문단: 새로운 사실이 있습니다."
    # Unchanged files keep their embeddings exactly (only the language offsets moved).
    kept = [row for row, c in enumerate(everything) if c.file == "000_25ef5ea761165839.txt"]
    old_rows = [row for row, c in enumerate(faiss.chunks) if c.file == "000_25ef5ea761165839.txt"]
    np.testing.assert_allclose(after.raw_vectors(kept), faiss.raw_vectors(old_rows), atol=1e-5)
    # The live generation and the one it replaced (for readers that opened it) remain.
    assert generations(after) == sorted([after.collection, store.collection])


KILLED_BUILD = """
import sys, time
from pathlib import Path
import numpy as np
from rag import milvus_store
from rag.chunking import ChunkingSettings
from rag.settings import load_settings
from rag.stores import update_store

class Embedder:  # any vectors will do: this build never finishes
    id, dim = "killed", {dim}
    def count_tokens(self, text): return len(text.split())
    def encode_passages(self, texts, batch_size=32, show_progress=False):
        return np.ones((len(texts), self.dim), dtype=np.float32) / self.dim ** 0.5

real_insert = milvus_store._insert
def insert_then_hang(client, collection, rows):
    real_insert(client, collection, rows)
    print("inserted", collection, flush=True)
    time.sleep(600)
milvus_store._insert = insert_then_hang
settings = load_settings(environ={{}}, docs_dir=Path(sys.argv[1]), store="milvus", milvus_uri=sys.argv[2])
update_store(settings, Embedder(), ChunkingSettings(128, 16), rebuild=True)
"""


def test_a_build_killed_half_way_leaves_the_old_collection_serving(milvus_server, tmp_path, embedder):
    settings = settings_for(milvus_server.uri, small_docs(tmp_path / "docs"))
    before, _ = update_store(settings, embedder, CHUNKING)
    question = "When did the Seoul subway open?"
    expected = [h.chunk for h in Retriever(before, embedder).search(question, 2)]

    builder = subprocess.Popen(
        [sys.executable, "-c", KILLED_BUILD.format(dim=embedder.dim), str(settings.docs_dir), milvus_server.uri],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = builder.stdout.readline()  # the new chunk collection holds rows now
    builder.kill()  # SIGKILL: no cleanup of any kind
    builder.wait()
    assert line.startswith("inserted"), builder.stderr.read()
    half_built = line.split()[1]

    serving = open_store(settings)
    assert serving.collection == before.collection
    assert [h.chunk for h in Retriever(serving, embedder).search(question, 2)] == expected
    assert half_built in generations(serving)

    after, report = update_store(settings, embedder, CHUNKING)  # nothing changed: leftovers go
    assert not report.changed and after.collection == before.collection
    assert generations(after) == [before.collection]


def test_a_server_stopped_mid_question_is_a_one_line_error_naming_it(milvus_server, tmp_path, embedder):
    settings = settings_for(milvus_server.uri, small_docs(tmp_path / "docs"))
    update_store(settings, embedder, CHUNKING)
    store = open_store(settings)
    retriever = Retriever(store, embedder)
    assert retriever.search("Who built the bridge?", 2)
    milvus_server.stop()
    with pytest.raises(RagError) as error:
        retriever.search("Who built the bridge?", 2)
    message = str(error.value)
    assert f"cannot reach Milvus at {milvus_server.uri}" in message and "\n" not in message
    with pytest.raises(RagError, match=f"cannot reach Milvus at {milvus_server.uri}"):
        open_store(settings)


def both_stores(tmp_path: Path, documents) -> tuple:
    """A milvus-lite file and a FAISS folder written from the same documents, each opened."""
    from rag.chunking import chunk_document
    from rag.index import load_index, write_index

    embedder = FakeEmbedder()
    chunks = [c for d in documents for c in chunk_document(d, CHUNKING, embedder.count_tokens)]
    vectors = embedder.encode_passages([c.text for c in chunks])
    settings = settings_for(str(tmp_path / "both.db"), tmp_path)
    write_milvus(settings, documents, chunks, vectors, embedder, CHUNKING)
    write_index(tmp_path / "index", documents, chunks, vectors, embedder, CHUNKING)
    return open_store(settings), load_index(tmp_path / "index")


@pytest.mark.full  # milvus-lite runs its server in a process of its own
def test_paragraphs_keep_their_page_and_ocr_flag_as_in_the_faiss_store(tmp_path):
    documents = paged_documents()
    store, faiss = both_stores(tmp_path, documents)
    paragraphs = [p for d in documents for p in d.paragraphs]
    assert [store.paragraph(p.file, p.piece) for p in paragraphs] == paragraphs
    assert [faiss.paragraph(p.file, p.piece) for p in paragraphs] == paragraphs
    assert store.paragraphs_of("report.pdf") == faiss.paragraphs_of("report.pdf") == list(documents[0].paragraphs)
    assert store.chunks_by_file() == faiss.chunks_by_file()
    assert store.files == faiss.files


@pytest.mark.full  # milvus-lite runs its server in a process of its own
def test_a_poor_stored_title_is_shown_as_the_rule_now_makes_it_as_in_the_faiss_store(tmp_path):
    # A title an older rule stored (`about:blank`, a browser's printed PDF) is made anew on load
    # from the stored paragraphs, by both stores, without waiting for `rag index`.
    from dataclasses import replace

    pdf, text = paged_documents()
    store, faiss = both_stores(tmp_path, [replace(pdf, title="about:blank"), text])
    assert store.files["report.pdf"]["title"] == faiss.files["report.pdf"]["title"] == pdf.paragraphs[0].text
    assert store.files["notes.txt"] == faiss.files["notes.txt"]


@pytest.mark.full
def test_commands_build_and_answer_from_an_embedded_milvus_file(tmp_path):
    docs = small_docs(tmp_path / "docs")
    database = tmp_path / "index.db"
    options = ["--docs", str(docs), "--store", "milvus", "--milvus-uri", str(database)]
    status, stdout, stderr = run("rag", "index", "--json", *options)
    assert status == 0, stderr
    assert json.loads(stdout)["chunks_total"] == 2
    status, stdout, stderr = run(
        "ask", "--json", "--retrieve-only", "--k", "1", *options, "서울 지하철은 언제 개통했나요?"
    )
    assert status == 0, stderr
    assert json.loads(stdout)["retrieved"][0]["file"] == "b.md"

    status, _, stderr = run(
        "ask", "--retrieve-only", "--store", "milvus", "--milvus-uri", str(tmp_path / "missing" / "index.db"), "What?"
    )
    assert_one_line_error(status, stderr, "does not exist")
    status, _, stderr = run("ask", "--retrieve-only", "--store", "milvus", "What?")
    assert_one_line_error(status, stderr, "--store milvus needs --milvus-uri")


@pytest.mark.slow
def test_eval_retrieval_on_milvus_is_within_two_points_of_faiss(tmp_path, seeds_retrieval):
    status, stdout, stderr = run(
        "rag",
        "eval",
        "--retrieve-only",
        "--json",
        "--out",
        str(tmp_path / "milvus"),
        "--store",
        "milvus",
        "--milvus-uri",
        str(tmp_path / "seeds.db"),
    )
    assert status == 0, stderr
    milvus = json.loads(stdout)["retrieval"]
    for metric in ("hit@5", "mrr@10"):
        assert abs(milvus[metric] - seeds_retrieval[metric]) <= 0.02, (metric, milvus, seeds_retrieval)
