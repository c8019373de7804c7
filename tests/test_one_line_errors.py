"""What a careless user met as tracebacks or false alarms (issue 21), each now one line on
stderr and a non-zero exit, through the real commands: a Milvus-lite database held by another
process, a --milvus-uri naming something that is not a Milvus database, standard output on a
full disk, an index folder that cannot be written; and a reader loading the index while a
build replaces it, which must never be told the index is missing."""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

import rag.index
from rag.chunking import ChunkingSettings
from rag.errors import RagError
from rag.index import CURRENT, load_index, update_index

from .conftest import ROOT
from .fakes import FakeEmbedder, small_docs
from .test_cli import assert_one_line_error, run

CHUNKING = ChunkingSettings(128, 16)


def live_generation(index_dir: Path) -> str:
    return json.loads((index_dir / CURRENT).read_text())["generation"]


# -- a reader and a build at the same time ---------------------------------------------------------
def test_a_reader_whose_generation_is_replaced_mid_load_reads_the_new_one(tmp_path, monkeypatch):
    """The moment the race needs, made certain: right after the reader has read CURRENT, a
    build makes a new generation live and removes the one the reader was about to open."""
    docs, index_dir = small_docs(tmp_path / "docs"), tmp_path / "index"
    update_index(docs, index_dir, FakeEmbedder(), CHUNKING)
    first = live_generation(index_dir)
    read_pointer = rag.index._current_generation
    rebuilt = []

    def pointer_then_rebuild(folder):
        found = read_pointer(folder)
        if not rebuilt:
            rebuilt.append(first)  # the build's own loads read the pointer as it is
            update_index(docs, index_dir, FakeEmbedder(), CHUNKING, rebuild=True)
        return found

    monkeypatch.setattr(rag.index, "_current_generation", pointer_then_rebuild)
    loaded = load_index(index_dir)
    assert rebuilt and not (index_dir / first).exists()
    assert loaded.folder.name == live_generation(index_dir) != first
    assert loaded.chunks == load_index(index_dir).chunks


def test_a_damaged_live_index_is_still_reported_and_not_retried_forever(tmp_path):
    docs, index_dir = small_docs(tmp_path / "docs"), tmp_path / "index"
    update_index(docs, index_dir, FakeEmbedder(), CHUNKING)
    (index_dir / live_generation(index_dir) / "chunks.jsonl").unlink()
    with pytest.raises(RagError, match="index file missing: .*chunks.jsonl; rebuild with `rag index --rebuild`"):
        load_index(index_dir)


@pytest.mark.full  # a writer process
def test_readers_loading_while_a_writer_rebuilds_in_a_loop_always_get_a_whole_index(tmp_path):
    docs, index_dir = small_docs(tmp_path / "docs"), tmp_path / "index"
    update_index(docs, index_dir, FakeEmbedder(), CHUNKING)
    rebuilds = 40
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from rag.chunking import ChunkingSettings; "
            "from rag.index import update_index; from tests.fakes import FakeEmbedder\n"
            "for _ in range(int(sys.argv[3])):\n"
            "    update_index(Path(sys.argv[1]), Path(sys.argv[2]), FakeEmbedder(), ChunkingSettings(128, 16), "
            "rebuild=True)",
            str(docs),
            str(index_dir),
            str(rebuilds),
        ],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    loads, generations, failures = 0, set(), []
    while writer.poll() is None:
        try:
            generations.add(load_index(index_dir).folder.name)
        except RagError as error:
            failures.append(str(error))
        loads += 1
    assert writer.returncode == 0, writer.stderr.read()
    assert failures == [], f"{len(failures)} of {loads} loads failed"
    assert len(generations) > 1  # the loads did overlap the rebuilds


# -- an index folder that cannot be written ---------------------------------------------------------
@pytest.mark.parametrize("code", [errno.EROFS, errno.ENOSPC, errno.EACCES])
def test_an_index_write_that_fails_is_a_one_line_error_and_the_index_stays(tmp_path, monkeypatch, code):
    """Root writes into a folder whatever its mode, so the failure is made where it happens:
    the renames that put each new index file in place."""
    docs, index_dir = small_docs(tmp_path / "docs"), tmp_path / "index"
    update_index(docs, index_dir, FakeEmbedder(), CHUNKING)
    before = live_generation(index_dir)

    def failing(source, target, **kwargs):
        raise OSError(code, os.strerror(code), str(source))

    monkeypatch.setattr(rag.index.os, "replace", failing)
    with pytest.raises(RagError) as error:
        update_index(docs, index_dir, FakeEmbedder(), CHUNKING, rebuild=True)
    monkeypatch.undo()
    assert str(error.value).startswith(f"cannot write the index in {index_dir} (")
    assert f"{os.strerror(code)}); make the folder writable or choose another --index" in str(error.value)
    assert "\n" not in str(error.value)
    assert live_generation(index_dir) == before and load_index(index_dir).chunks


@contextmanager
def read_only(folder: Path):
    """`folder` made read-only for this process: by its mode, or for root (whom modes do not
    stop) by the immutable attribute."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    subprocess.run(["chattr", "+i", str(folder)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


@pytest.mark.full  # runs `rag index`
def test_rag_index_into_a_read_only_folder_is_a_one_line_error(tmp_path):
    docs, index_dir, empty = small_docs(tmp_path / "docs"), tmp_path / "index", tmp_path / "empty"
    update_index(docs, index_dir, FakeEmbedder(), CHUNKING)
    empty.mkdir()
    for folder in (index_dir, empty):
        with read_only(folder):
            status, _, stderr = run("rag", "index", "--rebuild", "--docs", str(docs), "--index", str(folder))
        assert_one_line_error(status, stderr, f"index folder {folder} is read-only; make it writable")


# -- standard output on a full disk -------------------------------------------------------------------
def run_into_full_disk(program: str, *args: str) -> tuple[int, str]:
    """A command whose standard output is /dev/full (every write fails: no space left)."""
    code = f"import sys; from rag.cli import {program}_main; sys.exit({program}_main(sys.argv[1:]))"
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [sys.executable, "-c", code, *args], stdout=full, stderr=subprocess.PIPE, text=True, timeout=600, cwd=ROOT
        )
    return result.returncode, result.stderr


@pytest.mark.full
def test_a_full_disk_on_standard_output_is_a_one_line_error(tmp_path):
    full = "cannot write the result to standard output (No space left on device)"
    docs, index_dir = small_docs(tmp_path / "docs"), tmp_path / "index"
    status, stderr = run_into_full_disk("rag", "index", "--docs", str(docs), "--index", str(index_dir))
    assert_one_line_error(status, stderr, full)
    assert load_index(index_dir).chunks  # the index itself was built; only its report was lost
    for json_flag in ([], ["--json"]):
        status, stderr = run_into_full_disk(
            "ask", "--retrieve-only", *json_flag, "--docs", str(docs), "--index", str(index_dir), "Who?"
        )
        assert_one_line_error(status, stderr, full)


# -- Milvus-lite ------------------------------------------------------------------------------------
@pytest.mark.full  # milvus-lite runs a server in the holding process
def test_a_milvus_database_held_by_another_process_names_it_and_suggests_a_server(tmp_path):
    docs, database = small_docs(tmp_path / "docs"), tmp_path / "index.db"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pymilvus import MilvusClient; client = MilvusClient(uri=sys.argv[1]); "
            "print('open', flush=True); sys.stdin.read()",
            str(database),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "open\n"
        options = ["--docs", str(docs), "--store", "milvus", "--milvus-uri", str(database)]
        for command in (["ask", "--retrieve-only", *options, "What?"], ["rag", "index", *options]):
            status, _, stderr = run(*command)
            assert_one_line_error(status, stderr, f"the Milvus database {database} is in use by another process")
            assert f"(pid {holder.pid}: " in stderr and "--milvus-uri http://127.0.0.1:19530" in stderr
    finally:
        holder.terminate()
        holder.wait(30)


@pytest.mark.full
def test_a_milvus_uri_naming_something_else_is_a_one_line_error_and_left_alone(tmp_path):
    connection = sqlite3.connect(tmp_path / "notes.db")
    connection.execute("create table notes (text)")
    connection.commit()
    connection.close()
    (tmp_path / "noise.db").write_bytes(os.urandom(4096))
    (tmp_path / "mine.db").mkdir()
    (tmp_path / "mine.db" / "letter.txt").write_text("my letter")
    before = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    for name, what in (("notes.db", "a file"), ("noise.db", "a file"), ("mine.db", "a folder")):
        status, _, stderr = run(
            "ask", "--retrieve-only", "--store", "milvus", "--milvus-uri", str(tmp_path / name), "What?"
        )
        assert_one_line_error(status, stderr, f"--milvus-uri {tmp_path / name} is {what} that")
    assert {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()} == before
