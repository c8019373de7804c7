"""`rag bench`: speed and memory of the assistant, each figure beside the raw library doing
the same work in the same run.

The cores of this machine are shared, so absolute timings drift by a factor of several from
one minute to the next; a ratio against the bare library measured in the same run, pairs
interleaved, is what stays comparable. Every figure is a median (p50) and a p95 over
repeated runs after a warm-up.

- indexing: `update_index(rebuild=True)` into temporary folders, on the documents (seeds/)
  and on a synthetic corpus of ~5,000 paragraphs in four languages made from their
  sentences, against `SentenceTransformer.encode` alone on the same chunk texts, batch size
  and prompt (the limit: everything else is overhead);
- retrieval: `Assistant.retrieve` (embed + FAISS + BM25 + fusion) on the seeds index, against
  `encode` + a bare FAISS search; the same on a synthetic 100,000-chunk index written and
  loaded by rag/index.py (flat, and HNSW with its recall@10 against exact search);
- generation: through `Assistant.stream` with the default settings, time to first token and
  decode tokens/s against `llama_cpp.Llama` called directly with the same messages and
  grammar; prompt tokens/s and prefix reuse from llama.cpp's own counters; a table of TTFT
  against the number and size of passages;
- start-up: `ask` in a fresh process, seconds to its first token and its peak RSS, against a
  script that only loads the two models with the bare libraries and generates the same
  answer; `rag ui` on a free port, one question through gradio_client, its peak RSS;
- embedders: for e5-small (the default) and EmbeddingGemma, `rag index --rebuild` on the
  documents as a whole process (chunks/s, peak RSS; the two take turns) against ONNX Runtime's
  `session.run` alone on the same chunks' batches, a question's embedding against
  `session.run` on its token ids, and the peak RSS of `ask` with each (the LLM, one question).

The bench never touches the project's index/ (it builds its own in a temporary folder).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rag.cli import Command
from rag.errors import RagError
from rag.settings import Settings, given_flags, settings_from_args
from rag.store import EMBED_BATCH

from .bench_render import to_markdown
from .corpora import SEED, gaussian_vectors, seed_sentences, synthetic_documents, synthetic_paragraphs, write_corpus
from .figures import figure_values, targets
from .gold import typical_questions
from .metrics import p50
from .probes import (
    BARE_LLM_COLD_START,
    COLD_BREAKDOWN,
    LlmCall,
    LlmProbe,
    TimedEmbedder,
    first_output,
    folder_mb,
    free_port,
    now,
    peak_rss_mb,
    raw_chat,
    raw_encode,
    reference_embedder,
    stop_process,
)
from .reports import rounded

CHUNKS_PER_FILE_LARGE = 1000
ANN_K = 10


@dataclass(frozen=True)
class Plan:
    """How much to measure: the full bench (under 10 minutes here) or --quick (for tests)."""

    index_reps: int = 3  # rebuilds of the seeds index (and bare encodings), after a warm-up
    synthetic_paragraphs: int = 5000
    synthetic_raw_share: float = 0.2  # of the synthetic chunks encoded again by the bare library
    retrieval_questions: int = 40
    retrieval_reps: int = 3
    large_chunks: int = 100_000
    large_reps: int = 1
    recall_queries: int = 100
    generation_questions: int = 6  # the first warms up
    grid: tuple[tuple[int, int], ...] = ((1, 144), (2, 144), (3, 96), (2, 96), (2, 192))  # (passages, tokens)
    grid_questions: int = 1
    cold_runs: int = 2  # of each: `ask`, `ask --retrieve-only`, the bare LLM
    embedder_index_reps: int = 3  # `rag index --rebuild` processes per embedder, the embedders taking turns
    embedder_questions: int = 40  # embedded one at a time by each embedder, after a warm-up
    ui_memory_questions: int = 100  # asked of one `rag ui`, uploads among them; RSS after a tenth and at the end
    # Repetitions beyond the first are dropped when the bench runs behind this many seconds
    # (scaled by each section's share), so a busy machine still finishes in under 10 minutes.
    budget_s: float | None = 540


QUICK = Plan(
    index_reps=1,
    synthetic_paragraphs=200,
    synthetic_raw_share=1.0,
    retrieval_questions=10,
    retrieval_reps=1,
    large_chunks=2000,
    recall_queries=30,
    generation_questions=2,
    grid=((1, 144), (2, 144)),
    grid_questions=1,
    cold_runs=1,
    embedder_index_reps=1,
    embedder_questions=10,
    ui_memory_questions=6,
    budget_s=None,
)
SECTIONS = ("indexing", "retrieval", "large", "generation", "startup", "ui", "ui_memory", "embedders")
# The catalogue's two embedders: the default, and the one it is held against for becoming it.
EMBEDDERS = ("e5-small", "gemma-300m")


# -- command line --------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Measure indexing, retrieval, generation, start-up and memory, each against the raw "
        "library doing the same work in the same run. Builds its own indexes in a temporary "
        "folder from --docs (--index is not used). About 11 minutes on 2 cores; --quick: 2-4."
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.add_argument("--out", type=Path, help="also write bench.json and bench.md into this folder")
    parser.add_argument(
        "--quick", action="store_true", help="fewer repetitions and smaller synthetic corpora (for tests)"
    )
    parser.add_argument(
        "--skip",
        action="append",
        choices=SECTIONS,
        default=[],
        help="leave a section out (repeatable); its figures are null",
    )
    parser.add_argument(
        "--section",
        action="append",
        choices=SECTIONS,
        default=[],
        dest="sections",
        help="measure only this section (repeatable); the others' figures are null",
    )


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    # The bench builds its own indexes (FAISS, and Milvus in an embedded milvus-lite file): the
    # flags naming where an index lives are not passed on.
    passthrough = []
    for flag, value in given_flags(args):
        if flag not in ("--docs", "--index", "--store", "--milvus-uri", "--milvus-token"):
            passthrough += [flag, str(value)]
    if args.out is not None:
        try:
            args.out.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise RagError(f"cannot create the output folder {args.out}: {error.strerror or error}") from None
    skip = set(args.skip) | (set(SECTIONS) - set(args.sections) if args.sections else set())
    results = run_bench(settings, QUICK if args.quick else Plan(), skip=skip, passthrough=passthrough)
    markdown = to_markdown(results)
    if args.out is not None:
        (args.out / "bench.json").write_text(json.dumps(results, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        (args.out / "bench.md").write_text(markdown, encoding="utf-8")
    if args.json:
        print(json.dumps(results, ensure_ascii=False))
    else:
        print(markdown)
    return 0


# -- the bench -----------------------------------------------------------------------------
@dataclass
class Bench:
    settings: Settings
    plan: Plan
    root: Path
    log: Callable[[str], None]
    passthrough: list[str] = field(default_factory=list)
    started: float = field(default_factory=now)
    details: dict = field(default_factory=dict)
    assistant: object = None  # on the seeds index built here
    seeds_index: Path | None = None
    real_vectors: object = None  # chunk embeddings (+ languages) to shape the synthetic vectors
    real_languages: list[str] = field(default_factory=list)
    questions: list[str] = field(default_factory=list)
    answered: list[str] = field(default_factory=list)  # questions the LLM was asked (not refused before)
    large_documents: list = field(default_factory=list)  # the synthetic corpus of bench_large
    llm_call: LlmCall | None = None  # one recorded LLM call, replayed by the bare-library cold start
    _reference: object = None

    def reference(self):
        """sentence-transformers on the same model: the bare library embedding is held against
        (the pipeline runs the default model through its ONNX export)."""
        if self._reference is None:
            self._reference = reference_embedder(self.settings.embedder_name, self.settings.threads)
        return self._reference

    def say(self, message: str) -> None:
        self.log(f"[bench {now() - self.started:5.0f} s] {message}")

    def behind(self, what: str, share: float) -> bool:
        """True (and noted in the results) when more than `share` of the time budget is spent."""
        if self.plan.budget_s is None or now() - self.started <= share * self.plan.budget_s:
            return False
        self.say(f"behind schedule: {what} dropped")
        self.details.setdefault("dropped_for_time", []).append(what)
        return True

    def assistant_for(self, **changes):
        """Another Assistant, with other settings, sharing the embedder this process loaded."""
        from rag.assistant import Assistant

        return Assistant(self.settings.replace(**changes), log=self.log, embedder=self.assistant.embedder)


def run_bench(
    settings,
    plan: Plan = Plan(),
    skip: set[str] = frozenset(),
    passthrough: list[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Every measurement, as one JSON-ready dict (see `summary`)."""
    from rag.assistant import Assistant
    from rag.index import exists

    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    load_before = os.getloadavg()
    root = Path(tempfile.mkdtemp(prefix="rag-bench-"))
    bench = Bench(settings, plan, root, log, passthrough or [])
    try:
        bench.questions = typical_questions()
        bench.say(f"loading the embedder ({settings.embedder_name}); working in {root}")
        bench.assistant = Assistant(settings.replace(index_dir=root / "seeds-index", store="faiss"), log=log)
        started = now()
        bench.assistant.embedder  # noqa: B018 - load it now, once
        bench.details["embedder_load_s"] = now() - started
        if "indexing" not in skip:
            bench_indexing(bench)
        if set(SECTIONS) - skip - {"embedders"}:  # the sections that use the seeds index built here
            if not exists(bench.assistant.settings.index_dir):
                bench.say("building the seeds index")
                bench.assistant.update_index(rebuild=True)
            bench.seeds_index = bench.assistant.settings.index_dir
            if bench.real_vectors is None:
                index = bench.assistant.index
                bench.real_vectors, bench.real_languages = index.raw_vectors(), [c.language for c in index.chunks]
        if "retrieval" not in skip:
            bench_retrieval(bench)
            bench_milvus(bench, "seeds", bench.assistant)
        if "large" not in skip:
            bench_large(bench)
        if "generation" not in skip:
            bench_generation(bench)
        if "startup" not in skip:
            bench_cold_start(bench)
        if "ui" not in skip:
            bench_ui(bench)
        if "ui_memory" not in skip:
            bench_ui_memory(bench)
        if "embedders" not in skip:
            bench_embedders(bench)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    bench.details["load_average_before"] = [round(x, 2) for x in load_before]
    bench.details["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    bench.details["bench_seconds"] = now() - bench.started
    bench.say("done")
    return summary(bench)


# -- indexing ------------------------------------------------------------------------------
def bench_indexing(bench: Bench) -> None:
    from rag.chunking import ChunkingSettings
    from rag.documents import read_documents
    from rag.index import update_index

    settings, plan, embedder = bench.settings, bench.plan, bench.assistant.embedder
    chunking = ChunkingSettings(settings.chunk_tokens, settings.chunk_overlap)
    timed = TimedEmbedder(embedder)

    def pipeline(docs: Path, folder: Path):
        timed.seconds, timed.texts, timed.calls = 0.0, 0, 0
        started = now()
        index, report = update_index(docs, folder, timed, chunking, settings.index_type, rebuild=True)
        return now() - started, timed.seconds, index

    def raw(texts: list[str]) -> float:
        started = now()
        raw_encode(bench.reference(), texts, "passage")
        return now() - started

    # The documents (seeds), repeated, pipeline and bare encoding interleaved, after a warm-up
    # on the smallest document (imports, first calls of the tokenizer, model, FAISS and BM25).
    bench.say(f"indexing {settings.docs_dir}: warm-up, then {plan.index_reps} x (rebuild, bare encode)")
    documents, _ = read_documents(settings.docs_dir)
    if not documents:
        raise RagError(f"no documents to index in {settings.docs_dir}")
    smallest = min(documents, key=lambda d: sum(len(p.text) for p in d.paragraphs))
    warm_docs = bench.root / "warm-up-docs"
    (warm_docs / smallest.file).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(settings.docs_dir / smallest.file, warm_docs / smallest.file)
    _, _, index = pipeline(warm_docs, bench.root / "warm-up-index")
    raw([c.text for c in index.chunks])
    shutil.rmtree(warm_docs, ignore_errors=True)
    shutil.rmtree(bench.root / "warm-up-index", ignore_errors=True)
    texts = None
    runs = []
    for rep in range(plan.index_reps):
        last = rep == plan.index_reps - 1 or (rep >= 1 and bench.behind("seeds index rebuilds", 0.10))
        folder = bench.root / ("seeds-index" if last else f"seeds-{rep}")
        if rep % 2 and texts is not None:
            bare = raw(texts)
            total, inside, index = pipeline(settings.docs_dir, folder)
        else:
            total, inside, index = pipeline(settings.docs_dir, folder)
            texts = [c.text for c in index.chunks]
            bare = raw(texts)
        runs.append(
            {
                "pipeline_s": total,
                "encode_inside_s": inside,
                "raw_encode_s": bare,
                "embedded_texts": timed.texts,
                "encode_calls": timed.calls,
            }
        )
        if last:
            break
        shutil.rmtree(folder, ignore_errors=True)
    bench.real_vectors, bench.real_languages = index.raw_vectors(), [c.language for c in index.chunks]
    seeds = {"chunks": len(texts), "files": len(index.files), "runs": runs}

    # A synthetic corpus of ~5,000 paragraphs in four languages from the documents' sentences.
    sentences = seed_sentences(documents)
    paragraphs = synthetic_paragraphs(sentences, plan.synthetic_paragraphs)
    docs = bench.root / "synthetic-docs"
    files = write_corpus(docs, paragraphs)
    share = plan.synthetic_raw_share
    bench.say(
        f"indexing a synthetic corpus: {len(paragraphs)} paragraphs in {files} files "
        f"({', '.join(sorted(sentences))}), then bare encoding of "
        f"{'the same chunks' if share >= 1 else f'a random {share:.0%} of the same chunks'}"
    )
    total, inside, index = pipeline(docs, bench.root / "synthetic-index")
    texts = [c.text for c in index.chunks]
    sample = texts if share >= 1 else random.Random(SEED).sample(texts, max(1, round(len(texts) * share)))
    # The bare encoding time of all the chunks, extrapolated from the sample's when it is one.
    bare = raw(sample) * len(texts) / len(sample)
    synthetic = {
        "paragraphs": len(paragraphs),
        "files": files,
        "languages": sorted(sentences),
        "sentences_by_language": {k: len(v) for k, v in sentences.items()},
        "chunks": len(texts),
        "raw_sample_chunks": len(sample),
        "runs": [{"pipeline_s": total, "encode_inside_s": inside, "raw_encode_s": bare}],
    }
    # Real embeddings of many chunks in four languages: the shape of the 100k synthetic vectors.
    bench.real_vectors, bench.real_languages = index.raw_vectors(), [c.language for c in index.chunks]
    del index
    shutil.rmtree(bench.root / "synthetic-index", ignore_errors=True)
    shutil.rmtree(docs, ignore_errors=True)
    bench.details["indexing"] = {
        "seeds": seeds,
        "synthetic": synthetic,
        "batch_size": EMBED_BATCH,
        "index_type": settings.index_type,
    }


# -- retrieval -----------------------------------------------------------------------------
def time_retrieval(
    assistant, reference, questions: list[str], reps: int, candidates: int, behind: Callable[[], bool] = lambda: False
) -> dict:
    """Assistant.retrieve against bare encode (`reference`, a SentenceTransformer) + FAISS
    search, pairs interleaved."""
    import numpy as np

    index = assistant.index
    for question in questions[:3]:  # warm-up
        assistant.retrieve(question)
    ours, bare, embed, search = [], [], [], []
    for rep in range(reps):
        if rep and behind():
            break
        for n, question in enumerate(questions):

            def pipeline():
                started = now()
                assistant.retrieve(question)  # noqa: B023 -- called within this iteration
                ours.append((now() - started) * 1000)

            def library():
                started = now()
                vector = raw_encode(reference, [question], "query")  # noqa: B023 -- as above
                middle = now()
                index.vectors.search(np.ascontiguousarray(vector, dtype=np.float32), min(candidates, len(index.chunks)))
                ended = now()
                bare.append((ended - started) * 1000)
                embed.append((middle - started) * 1000)
                search.append((ended - middle) * 1000)

            for step in (pipeline, library) if (rep + n) % 2 == 0 else (library, pipeline):
                step()
    return {
        "questions": len(questions),
        "reps": reps,
        "retrieve_ms": ours,
        "raw_ms": bare,
        "raw_embed_ms": embed,
        "raw_search_ms": search,
    }


def bench_retrieval(bench: Bench) -> None:
    from rag.retrieval import CANDIDATES

    plan = bench.plan
    questions = bench.questions[: plan.retrieval_questions]
    bench.say(f"retrieval on the seeds index: {len(questions)} questions x {plan.retrieval_reps}")
    bench.details["retrieval"] = time_retrieval(
        bench.assistant,
        bench.reference(),
        questions,
        plan.retrieval_reps,
        CANDIDATES,
        lambda: bench.behind("seeds retrieval repetitions", 0.38),
    )


def time_stores(assistants: dict, questions: list[str], reps: int) -> dict[str, list[float]]:
    """Assistant.retrieve (ms) on each store, the stores interleaved question by question."""
    for assistant in assistants.values():
        for question in questions[:3]:  # warm-up
            assistant.retrieve(question)
    times: dict[str, list[float]] = {name: [] for name in assistants}
    for rep in range(reps):
        for n, question in enumerate(questions):
            order = list(assistants.items())
            for name, assistant in order if (rep + n) % 2 == 0 else reversed(order):
                started = now()
                assistant.retrieve(question)
                times[name].append((now() - started) * 1000)
    return times


def bench_milvus(bench: Bench, corpus: str, faiss_assistant) -> None:
    """The same chunks and vectors as `faiss_assistant`'s index written to Milvus (milvus-lite,
    embedded, in the bench's folder), then retrieval on both stores, interleaved."""
    from rag.documents import read_documents
    from rag.milvus_store import write_milvus

    plan = bench.plan
    faiss = faiss_assistant.index
    milvus = bench.assistant_for(
        store="milvus", milvus_uri=str(bench.root / f"milvus-{corpus}.db"), index_type=faiss.manifest["index_type"]
    )
    documents = bench.large_documents if corpus == "large" else read_documents(bench.settings.docs_dir)[0]
    section = bench.details.setdefault("milvus", {})[corpus] = {
        "chunks": faiss.chunk_count,
        "engine": "milvus-lite (embedded)",
    }
    bench.say(f"Milvus ({corpus}, {faiss.chunk_count} chunks): writing the collections")
    questions = bench.questions[: plan.retrieval_questions]
    reps = plan.retrieval_reps if corpus == "seeds" else plan.large_reps
    try:
        started = now()
        write_milvus(milvus.settings, documents, faiss.chunks, faiss.raw_vectors(), milvus.embedder, milvus.chunking)
        section["write_s"] = now() - started
        bench.say(f"Milvus ({corpus}): {len(questions)} questions x {reps}, beside FAISS")
        section.update(time_stores({"faiss": faiss_assistant, "milvus": milvus}, questions, reps))
    except RagError as error:  # milvus-lite can be too slow for the read timeout at the large size
        bench.say(f"Milvus ({corpus}): {error}")
        section["error"] = str(error)


def bench_large(bench: Bench) -> None:
    """A synthetic index of `large_chunks` chunks written and loaded by rag/index.py, searched
    through Assistant.retrieve, flat and HNSW; HNSW's recall@10 against the exact search."""
    import numpy as np

    from rag.chunking import ChunkingSettings
    from rag.documents import read_documents
    from rag.index import KEYWORDS, VECTORS, write_index
    from rag.retrieval import CANDIDATES

    settings, plan = bench.settings, bench.plan
    embedder = bench.assistant.embedder
    count = plan.large_chunks
    documents_in, _ = read_documents(settings.docs_dir)
    texts = synthetic_paragraphs(seed_sentences(documents_in), count, mix=(2, 3, 3, 4), seed=SEED + 1)
    languages = [language for language, _ in texts]
    bench.say(
        f"{count} synthetic chunks: vectors from a Gaussian fitted to {len(bench.real_languages)} real chunk embeddings"
    )
    vectors = gaussian_vectors(bench.real_vectors, bench.real_languages, count, languages)
    documents, chunks = synthetic_documents(texts, CHUNKS_PER_FILE_LARGE)
    bench.large_documents = documents
    chunking = ChunkingSettings(settings.chunk_tokens, settings.chunk_overlap)
    questions = bench.questions[: plan.retrieval_questions]
    query_vectors = embedder.encode_queries(bench.questions[: plan.recall_queries])
    found: dict[str, np.ndarray] = {}
    out: dict = {
        "chunks": count,
        "dim": int(vectors.shape[1]),
        "vectors": "gaussian fitted to real embeddings",
        "by_type": {},
    }
    # The default index type first; the other one after it.
    for index_type in sorted(("flat", "hnsw"), key=lambda t: t != settings.index_type):
        folder = bench.root / f"large-{index_type}"
        bench.say(f"{count} chunks, {index_type}: writing the index (FAISS, BM25, tables, checksums)")
        started = now()
        write_index(folder, documents, chunks, vectors, embedder, chunking, index_type)
        write_s = now() - started
        assistant = bench.assistant_for(index_dir=folder, index_type=index_type)
        started = now()
        index = assistant.index  # load_index: checksums, FAISS, BM25, tables
        load_s = now() - started
        bench.say(f"{count} chunks, {index_type}: {len(questions)} questions x {plan.large_reps}")
        timing = time_retrieval(assistant, bench.reference(), questions, plan.large_reps, CANDIDATES)
        if index_type == "flat" and not bench.behind("Milvus at the large corpus", 0.5):
            bench_milvus(bench, "large", assistant)
        found[index_type] = index.vectors.search(query_vectors, ANN_K)[1]
        if index_type == "hnsw":
            hnsw = index.vectors.hnsw
            out["hnsw"] = {
                "M": int(hnsw.nb_neighbors(1)),
                "efSearch": int(hnsw.efSearch),
                "efConstruction": int(hnsw.efConstruction),
            }
            approximate_by_ef = {}
            for ef in (32, 64, 128, 256):
                hnsw.efSearch = ef
                started = now()
                approximate_by_ef[ef] = index.vectors.search(query_vectors, ANN_K)[1]
                approximate_by_ef[ef] = (approximate_by_ef[ef], (now() - started) * 1000 / len(query_vectors))
            hnsw.efSearch = out["hnsw"]["efSearch"]
        out["by_type"][index_type] = {
            "write_s": write_s,
            "load_s": load_s,
            "disk_mb": folder_mb(folder),
            "vectors_mb": (index.folder / VECTORS).stat().st_size / 2**20,
            "keywords_mb": folder_mb(index.folder / KEYWORDS),
            **timing,
        }
        del assistant, index
        shutil.rmtree(folder, ignore_errors=True)
    exact = found["flat"]

    def recall(approximate) -> float:
        return float(np.mean([len(set(exact[i]) & set(approximate[i])) / ANN_K for i in range(len(exact))]))

    out["ann_recall_at_10"] = recall(found["hnsw"])
    out["recall_queries"] = len(exact)
    # batch search time per query (all queries at once), so only comparable within this table
    out["recall_by_ef_search"] = [
        {"efSearch": ef, "recall_at_10": recall(result), "ms_per_query_batched": ms}
        for ef, (result, ms) in approximate_by_ef.items()
    ]
    bench.details["large"] = out


# -- generation ----------------------------------------------------------------------------
def bench_generation(bench: Bench) -> None:
    from rag.assistant import Assistant, Done, Token

    settings, plan = bench.settings, bench.plan
    bench.say("loading the LLM")
    started = now()
    llm = bench.assistant.llm
    load_s = now() - started
    probe = LlmProbe(llm)
    # The bench's Assistant again, with its LLM calls recorded.
    assistant = Assistant(bench.assistant.settings, log=bench.log, embedder=bench.assistant.embedder, llm=probe)
    assistant.index  # noqa: B018 - load it now, outside the timings
    raw_llama = None
    if probe.llama is not None:
        import llama_cpp

        raw_llama = llama_cpp.Llama(
            model_path=str(settings.llm_path),
            n_ctx=settings.context_tokens,
            n_threads=settings.threads,
            n_threads_batch=settings.threads,
            n_batch=512,
            use_mmap=True,
            verbose=False,
        )
    grammars: dict = {}

    def ask(question: str, **options) -> dict:
        calls_before = len(probe.calls)
        started, first, answer = now(), None, None
        for event in assistant.stream(question, **options):
            if isinstance(event, Token) and first is None:
                first = now()
            elif isinstance(event, Done):
                answer = event.answer
        call = probe.calls[-1] if len(probe.calls) > calls_before else None
        return {
            "question": question,
            "ttft_ms": (first - started) * 1000 if first else None,
            "timings_ms": dict(answer.timings_ms),
            "abstained": answer.abstained,
            "answer": answer.text,
            "call": call,
        }

    # Typical questions, each through the Assistant, then the same messages through the bare
    # library (each keeps its own KV cache, so both see the same prefix to reuse); the first
    # question the LLM answers warms both up and is left out of the figures.
    bench.say(f"generation: {plan.generation_questions} questions through the Assistant and llama_cpp.Llama")
    measured, refused_early, warm = [], 0, False
    for question in bench.questions[: plan.generation_questions * 4]:
        if len(measured) >= plan.generation_questions or (
            len(measured) >= 3 and bench.behind("generation questions", 0.72)
        ):
            break
        result = ask(question)
        if result["call"] is None:
            refused_early += 1
            continue
        result["raw"] = raw_chat(raw_llama, result["call"], grammars) if raw_llama is not None else None
        if not warm:
            warm = True
            result["warm_up"] = True
        measured.append(result)
        bench.answered.append(question)
    if measured:
        bench.llm_call = measured[0]["call"]
    grid = ttft_grid(bench, assistant, probe, ask) if bench.answered else []
    system_tokens = llm.count_tokens(_system_prompt()) if hasattr(llm, "count_tokens") else None
    bench.details["generation"] = {
        "llm_load_s": load_s,
        "questions": [_call_row(r) for r in measured],
        "refused_before_llm": refused_early,
        "grid": grid,
        "system_prompt_tokens": system_tokens,
        "max_tokens": settings.max_tokens,
        "passages": settings.passages,
        "passage_tokens": settings.passage_tokens,
        "threads": settings.threads,
    }
    del raw_llama


def _system_prompt() -> str:
    from rag import prompts

    return prompts.SYSTEM


def _call_row(result: dict) -> dict:
    def call_json(call: LlmCall | None) -> dict | None:
        if call is None:
            return None
        window = call.decode_window
        return {
            "ttft_ms": call.ttft_ms,
            "pieces": call.pieces,
            "text": call.text,
            "perf": call.perf,
            "prompt_tokens": call.prompt_tokens,
            "decode_tokens": window[0] if window else None,
            "decode_s": window[1] if window else None,
        }

    return {
        "question": result["question"],
        "warm_up": result.get("warm_up", False),
        "ttft_ms": result["ttft_ms"],
        "timings_ms": result["timings_ms"],
        "abstained": result["abstained"],
        "answer": result["answer"],
        "llm": call_json(result["call"]),
        "raw": call_json(result.get("raw")),
    }


def ttft_grid(bench: Bench, assistant, probe: LlmProbe, ask) -> list[dict]:
    """TTFT against the number and size of passages, with the system prompt in the KV cache
    (as in a running UI): before each question a one-token call with the system prompt alone."""
    plan, base = bench.plan, assistant.settings
    questions = bench.answered[1 : 1 + plan.grid_questions] or bench.answered[: plan.grid_questions]
    rows = []
    bench.say(f"TTFT by passages: (passages, tokens) in {list(plan.grid)} x {len(questions)} questions")
    prime = [{"role": "system", "content": _system_prompt()}, {"role": "user", "content": "."}]
    try:
        for cell, (passages, tokens) in enumerate(plan.grid):
            if cell >= 3 and bench.behind(f"TTFT cell {passages} x {tokens}", 0.80):
                continue
            # Gates open: another passage count changes the model's P(answerable), and a question
            # refused before its first token has no time to first token.
            assistant.settings = base.replace(
                passages=passages, passage_tokens=tokens, min_answerable=0.0, min_similarity=-1.0
            )
            cells = []
            for question in questions:
                for _ in probe.llm.stream(prime, 1, 0.0):  # not recorded
                    pass
                result = ask(question, max_tokens=1)
                if result["call"] is not None:
                    cells.append(result)
            rows.append(
                {
                    "passages": passages,
                    "passage_tokens": tokens,
                    "n": len(cells),
                    "prompt_tokens_p50": p50([c["call"].prompt_tokens for c in cells if c["call"].prompt_tokens]),
                    "evaluated_tokens_p50": p50([c["call"].perf["n_p_eval"] for c in cells if c["call"].perf]),
                    "ttft_llm_ms_p50": p50([c["call"].ttft_ms for c in cells if c["call"].ttft_ms]),
                    "ttft_ms_p50": p50([c["ttft_ms"] for c in cells if c["ttft_ms"]]),
                }
            )
    finally:
        assistant.settings = base
    return rows


# -- start-up and memory ---------------------------------------------------------------------
def _venv_script(name: str) -> list[str]:
    script = Path(sys.executable).parent / name
    if script.is_file():
        return [str(script)]
    entry = {"ask": "ask_main", "rag": "rag_main"}[name]
    return [sys.executable, "-c", f"import sys; from rag.cli import {entry}; sys.exit({entry}(sys.argv[1:]))"]


def _child_env(settings) -> dict:
    return {
        **os.environ,
        "RAG_THREADS": str(settings.threads),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


def bench_cold_start(bench: Bench) -> None:
    """`ask` and `ask --retrieve-only` in a fresh process against llama.cpp alone loading the
    same GGUF and generating from the same messages (runs interleaved); then one process that
    times each step of a cold `ask` in turn (the breakdown)."""
    settings, plan = bench.settings, bench.plan
    question = (bench.answered or bench.questions)[0]
    ask = _venv_script("ask") + [
        "--docs",
        str(settings.docs_dir),
        "--index",
        str(bench.seeds_index),
        *bench.passthrough,
    ]
    commands = {"ask": ask + [question], "retrieve_only": ask + ["--retrieve-only", question]}
    call = bench.llm_call
    if call is not None and not settings.llm_url:
        spec = {
            "threads": settings.threads,
            "llm": str(settings.llm_path),
            "n_ctx": settings.context_tokens,
            "messages": call.messages,
            "max_tokens": call.max_tokens,
            "temperature": call.temperature,
            "grammar": call.grammar,
        }
        commands["bare_llm"] = [sys.executable, "-c", BARE_LLM_COLD_START, json.dumps(spec, ensure_ascii=False)]
    bench.say(f"cold start: {', '.join(commands)} in new processes x {plan.cold_runs}, interleaved")
    env = _child_env(settings)
    runs: dict[str, list[dict]] = {kind: [] for kind in commands}
    for rep in range(plan.cold_runs):
        if rep >= 1 and bench.behind(f"cold start run {rep + 1}", 0.90):
            break
        kinds = list(commands) if rep % 2 == 0 else list(commands)[::-1]
        for kind in kinds:
            result = first_output(commands[kind], env, timeout=600)
            if result["status"] != 0:
                tail = (result["stderr"].strip().splitlines() or ["no output"])[-1]
                raise RagError(f"bench: cold start {kind} failed ({result['status']}): {tail}")
            runs[kind].append({k: result[k] for k in ("first_s", "total_s", "peak_rss_mb")})
    breakdown = None
    if not settings.llm_url:
        spec = {"docs": str(settings.docs_dir), "index": str(bench.seeds_index), "question": question}
        result = first_output(
            [sys.executable, "-c", COLD_BREAKDOWN, json.dumps(spec, ensure_ascii=False)],
            {**env, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
            timeout=600,
        )
        if result["status"] == 0:
            breakdown = json.loads(result["stdout"].strip().splitlines()[-1])
    bench.details["cold_start"] = {"question": question, "runs": runs, "breakdown": breakdown}


def bench_ui(bench: Bench) -> None:
    """`rag ui` on a free port: start-up, one question through gradio_client, peak RSS."""
    settings = bench.settings
    question = (bench.answered or bench.questions)[0]
    port = free_port()
    command = _venv_script("rag") + [
        "ui",
        "--port",
        str(port),
        "--docs",
        str(settings.docs_dir),
        "--index",
        str(bench.seeds_index),
        "--read-only",
        *bench.passthrough,
    ]
    bench.say(f"`rag ui` on port {port}: start, one question through gradio_client, peak RSS")
    started = now()
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        env=_child_env(settings),
        text=True,
    )
    out: dict = {}
    try:
        url = _wait_for_chat(process)
        out["start_s"] = now() - started
        from gradio_client import Client

        started = now()
        result = Client(url, verbose=False).predict(question, api_name="/ask")
        out["answer_s"] = now() - started
        out["answered"] = bool(result and result.get("answer"))
        out["peak_rss_mb"] = peak_rss_mb(process.pid)
    finally:
        stop_process(process)
    bench.details["ui"] = out


def bench_ui_memory(bench: Bench) -> None:
    """One `rag ui` on a writable copy of the documents answers many questions through
    gradio_client (the languages taking turns), with two uploads among them: its peak RSS after
    the first tenth and after all. A server that keeps nothing per question stays flat."""
    count = bench.plan.ui_memory_questions
    docs, index = bench.root / "ui-memory-docs", bench.root / "ui-memory-index"
    shutil.copytree(bench.settings.docs_dir, docs)
    shutil.copytree(bench.seeds_index, index)
    port = free_port()
    command = _venv_script("rag") + ["ui", "--port", str(port), "--docs", str(docs), "--index", str(index)]
    bench.say(f"`rag ui` on port {port}: {count} questions and 2 uploads through gradio_client, peak RSS")
    process = subprocess.Popen(
        [*command, *bench.passthrough],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        env=_child_env(bench.settings),
        text=True,
    )
    out: dict = {"questions": count, "rss_mb": {}}
    try:
        url = _wait_for_chat(process)
        from gradio_client import Client, handle_file

        client = Client(url, verbose=False)
        # One upload within the first tenth (its re-indexing peak is in the early figure), one later.
        uploads = {max(1, count // 10): "one", 2 * count // 3: "two"}
        for n in range(1, count + 1):
            client.predict(bench.questions[(n - 1) % len(bench.questions)], api_name="/ask")
            if n in uploads:  # a new document, re-indexed by the server
                upload = bench.root / f"ui-memory-upload-{uploads[n]}.txt"
                upload.write_text("\n".join(bench.questions[: 20 * (1 + len(uploads[n]))]) + "\n", encoding="utf-8")
                client.predict([handle_file(str(upload))], False, api_name="/upload_documents")
            if n in (max(1, count // 10), count):
                out["rss_mb"][str(n)] = peak_rss_mb(process.pid)  # keys as JSON has them
    finally:
        stop_process(process)
    bench.details["ui_memory"] = out


# -- embedders -------------------------------------------------------------------------------
def bench_embedders(bench: Bench) -> None:
    """Each catalogue embedder (EMBEDDERS) that is provisioned: `rag index --rebuild` on the
    documents in a new process (seconds, peak RSS), the embedders taking turns; then, in this
    process, a question's embedding (`encode_queries`, as `ask` calls it) against the bare
    `session.run` on its token ids, and the chunks' batches through the bare `session.run` (the
    limit of indexing); then `ask` with each, one question with the LLM, its peak RSS."""
    import gc

    from models.stamps import current_export
    from rag.embedding import load_embedder
    from rag.index import load_index

    from .embedder_speed import question_timings

    settings, plan = bench.settings, bench.plan
    env = _child_env(settings)
    # The flags given to the bench, less the embedder (each run names its own).
    pairs = list(zip(bench.passthrough[::2], bench.passthrough[1::2]))
    passthrough = [part for flag, value in pairs if flag != "--embedder" for part in (flag, value)]
    by_embedder: dict[str, dict] = {}
    for name in EMBEDDERS:
        folder = Path(settings.replace(embedder=name).embedder_name)
        if current_export(folder) is None:  # exporting it would take minutes: not the bench's to do
            bench.say(f"embedders: {name} is not provisioned (`rag models --all`); left out")
            by_embedder[name] = {"missing": f"not provisioned in {folder.parent}"}
        else:
            by_embedder[name] = {"folder": str(folder), "index_runs": []}
    ready = [name for name, section in by_embedder.items() if "missing" not in section]
    indexes = {name: bench.root / f"embedders-{name}" for name in ready}

    def child(command: list[str], name: str, *arguments: str) -> dict:
        """A whole `rag index` or `ask` process with embedder `name` on its own index, timed."""
        where = ["--docs", str(settings.docs_dir), "--index", str(indexes[name]), "--embedder", name]
        arguments_all = command[1:] + where + passthrough + list(arguments)
        result = first_output(_venv_script(command[0]) + arguments_all, env, timeout=1800)  # long: a busy machine
        if result["status"] != 0:
            tail = (result["stderr"].strip().splitlines() or ["no output"])[-1]
            raise RagError(f"bench: `{' '.join(command)} --embedder {name}` failed ({result['status']}): {tail}")
        return result

    bench.say(f"embedders: `rag index --rebuild` for {', '.join(ready)} x {plan.embedder_index_reps}, in turn")
    for rep in range(plan.embedder_index_reps):
        for name in ready if rep % 2 == 0 else ready[::-1]:
            result = child(["rag", "index", "--rebuild"], name)
            by_embedder[name]["index_runs"].append({k: result[k] for k in ("total_s", "peak_rss_mb")})

    questions = bench.questions[: plan.embedder_questions]
    for name in ready:
        section = by_embedder[name]
        bench.say(f"embedders: {name}: {len(questions)} questions and the chunks through the bare session")
        texts = [chunk.text for chunk in load_index(indexes[name]).chunks]
        embedder = load_embedder(section["folder"], settings.threads)
        section.update(id=embedder.id, dim=embedder.dim, chunks=len(texts), questions=len(questions))
        section.update(question_timings(embedder, questions, warm_up=min(10, len(questions))))
        feeds = [feed for _, feed in embedder.batches(texts, embedder.passage_prompt, EMBED_BATCH)]
        section["raw_encode_s"] = []
        for _ in range(plan.embedder_index_reps):
            started = now()
            for feed in feeds:
                embedder.session.run(None, feed)
            section["raw_encode_s"].append(now() - started)
        del embedder, feeds
        gc.collect()

    question = (bench.answered or bench.questions)[0]
    bench.say(f"embedders: `ask` with {', '.join(ready)}, one question each, peak RSS")
    for name in ready:
        result = child(["ask"], name, question)
        by_embedder[name]["ask"] = {
            **{k: result[k] for k in ("first_s", "total_s", "peak_rss_mb")},
            "answer": result["stdout"].strip()[:300],
        }
        shutil.rmtree(indexes[name], ignore_errors=True)
    bench.details["embedders"] = {"question": question, "batch_size": EMBED_BATCH, "by_embedder": by_embedder}


def _wait_for_chat(process: subprocess.Popen, timeout: float = 600) -> str:
    """The URL a `rag ui` child prints once it serves; RagError if it exits or never does."""
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        for line in process.stdout:
            lines.append(line)
            if "Chat running at" in line:
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(timeout) or process.poll() is not None:
        raise RagError(f"bench: `rag ui` did not start (exit {process.poll()}): {''.join(lines)[-300:]}")
    url = re.search(r"https?://\S+", next(line for line in lines if "Chat running at" in line)).group(0)
    return url.rstrip("/").rstrip(".").rstrip(")")


# -- results ---------------------------------------------------------------------------------
def _models(bench: Bench) -> dict:
    settings = bench.settings
    embedder = bench.assistant.embedder
    path = Path(settings.embedder_name)
    models = {
        "embedder": {
            "id": embedder.id,
            "dim": embedder.dim,
            "path": str(path) if path.exists() else None,
            "size_mb": folder_mb(path) if path.is_dir() else None,
        }
    }
    if settings.llm_url:
        models["llm"] = {"id": settings.llm_url, "url": settings.llm_url}
    else:
        llm = settings.llm_path
        models["llm"] = {
            "id": llm.name,
            "path": str(llm),
            "size_mb": llm.stat().st_size / 2**20 if llm.is_file() else None,
        }
    return models


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "sentence-transformers", "transformers", "faiss-cpu", "bm25s", "llama-cpp-python", "gradio"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def summary(bench: Bench) -> dict:
    """The declared figures (harness/figures.py, flat, as the issue names them), then the
    details they come from."""
    return summarise(bench.details, bench.settings, bench.plan, _models(bench), _versions())


def summarise(details: dict, settings, plan: Plan, models: dict, versions: dict) -> dict:
    from rag.settings import physical_cores

    d = details
    values = figure_values(d, settings.index_type)
    extras = {}
    if "generation" in d:
        extras["prefix_reuse"] = prefix_reuse(d["generation"])
        extras["ttft_grid"] = d["generation"]["grid"]
    if "cold_start" in d:
        extras["cold_start_breakdown_s"] = d["cold_start"]["breakdown"]
    if d.get("ui_memory", {}).get("rss_mb"):  # after how many questions the two RSS figures were taken
        extras["ui_memory_questions"] = sorted(map(int, d["ui_memory"]["rss_mb"]))
    return rounded(
        {
            **values,
            **extras,
            "cpu_cores": physical_cores(),
            "cpu_logical": os.cpu_count(),
            "threads": settings.threads,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "models": models,
            "versions": versions,
            "settings": {
                "k": settings.k,
                "passages": settings.passages,
                "passage_tokens": settings.passage_tokens,
                "retrieval": settings.retrieval,
                "index_type": settings.index_type,
                "chunk_tokens": settings.chunk_tokens,
                "max_tokens": settings.max_tokens,
                "context_tokens": settings.context_tokens,
                "docs": str(settings.docs_dir),
            },
            "plan": {**asdict(plan), "quick": plan == QUICK},
            "load_average_before": d.get("load_average_before"),
            "load_average_after": d.get("load_average_after"),
            "bench_seconds": d.get("bench_seconds"),
            "targets": targets(values),
            "details": {
                k: v for k, v in d.items() if k not in ("load_average_before", "load_average_after", "bench_seconds")
            },
        }
    )


def prefix_reuse(g: dict) -> dict:
    """llama.cpp's KV-cache reuse: prompt tokens evaluated by the first question and the next."""
    first = g["questions"][0]["llm"] if g["questions"] else None
    later = [r["llm"] for r in g["questions"][1:] if r["llm"] and r["llm"]["perf"]]
    return {
        "system_prompt_tokens": g["system_prompt_tokens"],
        "first_question_prompt_tokens": first["prompt_tokens"] if first else None,
        "first_question_evaluated": first["perf"]["n_p_eval"] if first and first["perf"] else None,
        "next_questions_prompt_tokens_p50": p50([c["prompt_tokens"] for c in later if c["prompt_tokens"]]),
        "next_questions_evaluated_p50": p50([c["perf"]["n_p_eval"] for c in later]),
        "next_questions_reused_p50": p50(
            [c["prompt_tokens"] - c["perf"]["n_p_eval"] for c in later if c["prompt_tokens"]]
        ),
    }


command = Command("measure speed and memory against the raw libraries", add_arguments, run)
