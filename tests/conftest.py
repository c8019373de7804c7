"""Shared fixtures, and the two test layers.

The fast layer (`make test-fast`, `pytest -m "not full"`) loads no model and starts no
process: pure functions, the fakes of tests/fakes.py, small index fixtures. Everything else
is the full layer, marked `full` here: any test using the real models (the `assistant` and
`seeds_index` fixtures, or anything built on them) or the files converted by real tools
(`converted_seeds`, `scanned`: Chromium prints them) is marked automatically, and a test that
starts a process or loads a model another way carries `@pytest.mark.full` itself. A test
left in the fast layer that starts a process or loads a model fails, saying so.

The full layer loads the models once per session: the `assistant` fixture holds them, and
`shared_assistant` gives Assistants on other folders that reuse them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
ARTIFACTS = ROOT / "tests" / "artifacts"

# Fixtures that hold the real models or start processes; a test using them, directly or not,
# is in the full layer.
FULL_FIXTURES = {"assistant", "seeds_index", "converted_seeds", "scanned"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if FULL_FIXTURES & set(getattr(item, "fixturenames", ())) or item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.full)


def pytest_runtest_logstart(nodeid: str, location) -> None:
    """Where RAG_LAST_TEST names a file, it holds the test running now: a native crash (an
    abort in a library) ends pytest before it can report, and .ci/run then names the test."""
    if os.environ.get("RAG_LAST_TEST"):
        Path(os.environ["RAG_LAST_TEST"]).write_text(nodeid + "\n", encoding="utf-8")


def pytest_sessionfinish(session, exitstatus) -> None:
    if os.environ.get("RAG_LAST_TEST"):
        Path(os.environ["RAG_LAST_TEST"]).unlink(missing_ok=True)


@pytest.fixture(autouse=True)
def _fast_layer_guard(request, monkeypatch):
    """In a test not marked `full`: starting a process or loading a real model fails."""
    if request.node.get_closest_marker("full"):
        return

    def refuse(what: str):
        def refused(*args, **kwargs):
            pytest.fail(f"{request.node.nodeid} {what}: mark it @pytest.mark.full or use tests/fakes.py", pytrace=False)

        return refused

    from rag.embedding import OnnxEmbedder, SentenceTransformerEmbedder
    from rag.llm import LlamaCppLLM

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse("starts a process"))
    monkeypatch.setattr(SentenceTransformerEmbedder, "__init__", refuse("loads the embedder"))
    monkeypatch.setattr(OnnxEmbedder, "__init__", refuse("loads the embedder"))
    monkeypatch.setattr(LlamaCppLLM, "__init__", refuse("loads the LLM"))


@pytest.fixture(scope="session")
def assistant(tmp_path_factory):
    """One Assistant on an index of the seeds (in a temporary folder; the project's own index/
    is left alone) with the default models, loaded once and shared by the whole session."""
    from rag.assistant import Assistant
    from rag.settings import load_settings

    folder = tmp_path_factory.mktemp("seeds-index") / "index"
    shared = Assistant(load_settings(environ={}, docs_dir=SEEDS, index_dir=folder))
    shared.update_index()
    return shared


@pytest.fixture(scope="session")
def seeds_index(assistant) -> Path:
    """The folder of the session's index of seeds/."""
    return assistant.settings.index_dir


@pytest.fixture(scope="session")
def shared_assistant(assistant):
    """Make an Assistant with other settings (say, another documents folder) that reuses the
    session's loaded models instead of loading its own."""
    from rag.assistant import Assistant
    from rag.settings import load_settings

    def make(log=None, llm=None, **settings):
        options = {"log": log} if log else {}
        return Assistant(
            load_settings(environ={}, **settings), embedder=assistant.embedder, llm=llm or assistant.llm, **options
        )

    return make


@pytest.fixture(scope="session")
def small_llm():
    """The catalogue's small LLM (what `--fast` selects), loaded once: for tests of guarantees
    that rest on the pipeline rather than on which model writes the answer."""
    from models.catalogue import FAST_LLM
    from rag.llm import load_llm
    from rag.settings import load_settings

    return load_llm(load_settings(environ={}, llm=FAST_LLM), log=lambda message: None)


def seeds_with_index(folder: Path, seeds_index: Path) -> tuple[Path, Path]:
    """A writable copy of the seeds and of their index in `folder` (valid for them: same file names)."""
    docs, index = folder / "docs", folder / "index"
    shutil.copytree(SEEDS, docs)
    shutil.copytree(seeds_index, index)
    return docs, index


def run_main(main, argv: list[str]) -> tuple[int, str]:
    """A command's main function (rag_main, ask_main) run in this process: (exit code, stdout)."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    return code, out.getvalue()


@pytest.fixture(scope="module")
def seeds_app(assistant):
    """The chat app on the seeds, served in this process (read-only: the seeds folder is the
    project's own); its URL. One per test module, closed at the module's end."""
    from harness.probes import free_port
    from ui.app import UiOptions, serve, warm_up

    warm_up(assistant)
    demo, url = serve(assistant, UiOptions(read_only=True), port=free_port())
    yield url
    demo.close()


@pytest.fixture(scope="session")
def seeds_retrieval(seeds_index) -> dict:
    """The retrieval figures of `rag eval --retrieve-only` on the whole gold set over the
    session's index of the seeds: the baseline other formats and stores are held to."""
    import json

    from rag.cli import rag_main

    code, out = run_main(
        rag_main, ["eval", "--retrieve-only", "--json", "--docs", str(SEEDS), "--index", str(seeds_index)]
    )
    assert code == 0
    return json.loads(out)["retrieval"]


@pytest.fixture
def docs_copy(tmp_path) -> Path:
    """A writable copy of the seeds, for tests that change documents."""
    target = tmp_path / "docs"
    shutil.copytree(SEEDS, target)
    return target


# The scanned pages: one per language, text that is in no seed, so a hit can only come from OCR.
SCANNED_PAGES = {
    "en": ["The lighthouse keeper of Pulau Biru counted 4,180 ships in 1987.", "He kept the log in a green notebook."],
    "ko": ["등대지기는 1987년에 배 4,180척을 세었다.", "그는 초록색 공책에 기록했다."],
    "zh": ["灯塔看守人在1987年数了4180艘船。", "他把记录写在一本绿色的笔记本里。"],
    "id": ["Penjaga mercusuar Pulau Biru menghitung 4.180 kapal pada tahun 1987.", "Ia menulis catatan di buku hijau."],
}


@pytest.fixture(scope="session")
def converted_seeds(tmp_path_factory) -> dict[str, Path]:
    """The seeds as PDF (Chromium's print-to-PDF), DOCX (python-docx) and HTML, one folder per
    format, and one folder mixing the formats (and a scanned page); "txt" is seeds/ itself."""
    from .converted import html_to_pdf, scanned_pdf, seed_lines, to_docx, to_html

    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.fail(f"{chromium} is missing: `make install-test` installs Debian's chromium")
    root = tmp_path_factory.mktemp("converted")
    folders = {kind: root / kind for kind in ("pdf", "docx", "html", "mixed")}
    for folder in folders.values():
        folder.mkdir()
    printed = {}
    for seed in sorted(SEEDS.glob("*.txt")):
        lines = seed_lines(seed)
        page = to_html(lines)
        (folders["html"] / f"{seed.stem}.html").write_text(page, encoding="utf-8")
        to_docx(lines, folders["docx"] / f"{seed.stem}.docx")
        printed[folders["pdf"] / f"{seed.stem}.pdf"] = page
    html_to_pdf(printed, chromium)
    # The mixed folder: each seed in another format, and a scan of its own.
    for seed, kind in zip(sorted(SEEDS.glob("*.txt")), ("txt", "pdf", "docx", "html", "pdf")):
        source = seed if kind == "txt" else folders[kind] / f"{seed.stem}.{kind}"
        shutil.copy(source, folders["mixed"] / source.name)
    scanned_pdf(SCANNED_PAGES["en"], folders["mixed"] / "scan_en.pdf")
    return {"txt": SEEDS, **folders}


@pytest.fixture(scope="session")
def mixed_index(converted_seeds, tmp_path_factory) -> Path:
    """An index of the mixed folder, built by `rag index`."""
    from rag.cli import rag_main

    index = tmp_path_factory.mktemp("mixed") / "index"
    code, out = run_main(rag_main, ["index", "--docs", str(converted_seeds["mixed"]), "--index", str(index)])
    assert code == 0 and "skipped" not in out, out
    return index


@pytest.fixture(scope="session")
def scanned(tmp_path_factory) -> Path:
    """One scanned page per language, and a PDF whose first page has text and second is scanned."""
    import pypdfium2 as pdfium

    from .converted import html_to_pdf, scanned_pdf, to_html

    folder = tmp_path_factory.mktemp("scanned")
    for language, lines in SCANNED_PAGES.items():
        scanned_pdf(lines, folder / f"scan_{language}.pdf")
    work = tmp_path_factory.mktemp("typed")
    typed = work / "typed.pdf"
    html_to_pdf(
        {typed: to_html(["A typed first page", "The harbour office opened on a Tuesday."])}, Path("/usr/bin/chromium")
    )
    both = pdfium.PdfDocument.new()
    for part in (typed, folder / "scan_en.pdf"):
        source = pdfium.PdfDocument(part)
        both.import_pages(source, [0])
        source.close()
    both.save(work / "typed_then_scanned.pdf")
    both.close()
    (folder / "scan_en.pdf").unlink()  # its text is on page 2 of the combined file
    (work / "typed_then_scanned.pdf").rename(folder / "typed_then_scanned.pdf")
    return folder
