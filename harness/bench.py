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
  answer; `rag ui` on a free port, one question through gradio_client, its peak RSS.

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

from .corpora import SEED, gaussian_vectors, seed_sentences, synthetic_documents, synthetic_paragraphs, write_corpus
from .gold import typical_questions
from .metrics import p50, p95, ratio
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
from .reports import markdown_table, rounded

CHUNKS_PER_FILE_LARGE = 1000
ANN_K = 10

# The targets, on this machine (README, performance).
TARGETS = {
    "index_overhead_ratio": ("<=", 1.15),
    "index_overhead_ratio_synthetic": ("<=", 1.15),
    "retrieve_ms_p50": ("<=", 40.0),
    "retrieve_ms_p50_100k": ("<=", 60.0),
    "ttft_ms_p50": ("<=", 2000.0),
    "decode_ratio_vs_raw": (">=", 0.95),
    "cold_start_ratio_vs_bare_llm": ("<=", 1.5),
    "cold_start_retrieve_only_s": ("<=", 1.5),
    "peak_rss_mb": ("<=", 1300.0),  # set for the 0.5B LLM (--fast); the 1.5B default needs more (README)
    "peak_rss_mb_ui": ("<=", 2560.0),
}


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
    grid: tuple[tuple[int, int], ...] = ((1, 96), (3, 96), (5, 96), (3, 48), (3, 192))  # (passages, tokens)
    grid_questions: int = 1
    cold_runs: int = 2  # of each: `ask`, `ask --retrieve-only`, the bare LLM
    embedders: bool = True  # every catalogue embedder side by side (bench_embedders)
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
    grid=((1, 96), (3, 96)),
    grid_questions=1,
    cold_runs=1,
    embedders=False,
    budget_s=None,
)
SECTIONS = ("indexing", "retrieval", "large", "generation", "startup", "ui", "embedders")


# -- command line --------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Measure indexing, retrieval, generation, start-up and memory, each against the raw "
        "library doing the same work in the same run. Builds its own indexes in a temporary "
        "folder from --docs (--index is not used). About 8 minutes on 2 cores; --quick: 2-4."
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
    results = run_bench(settings, QUICK if args.quick else Plan(), skip=set(args.skip), passthrough=passthrough)
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
        if "embedders" not in skip and plan.embedders:
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
        timed.seconds = 0.0
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
        runs.append({"pipeline_s": total, "encode_inside_s": inside, "raw_encode_s": bare})
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


def indexing_figures(section: dict) -> dict:
    chunks, runs = section["chunks"], section["runs"]
    pipeline = [r["pipeline_s"] for r in runs]
    bare = [r["raw_encode_s"] for r in runs]
    return {
        "chunks": chunks,
        "pipeline_s_p50": p50(pipeline),
        "pipeline_s_p95": p95(pipeline),
        "raw_encode_s_p50": p50(bare),
        "raw_encode_s_p95": p95(bare),
        "chunks_per_s": ratio(chunks, p50(pipeline)),
        "raw_chunks_per_s": ratio(chunks, p50(bare)),
        # pipeline time / bare encoding time, pair by pair (the pairs ran back to back)
        "overhead_ratio": p50([r["pipeline_s"] / r["raw_encode_s"] for r in runs]),
        "encode_share": p50([r["encode_inside_s"] / r["pipeline_s"] for r in runs]),
        # pipeline time / the time it spent inside SentenceTransformer.encode: the same texts and
        # batches at the same moment, so the load on the machine cancels out exactly
        "overhead_ratio_inside": p50([r["pipeline_s"] / r["encode_inside_s"] for r in runs if r["encode_inside_s"]]),
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


def retrieval_figures(section: dict) -> dict:
    ours, bare = section["retrieve_ms"], section["raw_ms"]
    return {
        "retrieve_ms_p50": p50(ours),
        "retrieve_ms_p95": p95(ours),
        "raw_ms_p50": p50(bare),
        "raw_ms_p95": p95(bare),
        "raw_embed_ms_p50": p50(section["raw_embed_ms"]),
        "raw_search_ms_p50": p50(section["raw_search_ms"]),
        "overhead_ms_p50": p50([a - b for a, b in zip(ours, bare)]),
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
            assistant.settings = base.replace(passages=passages, passage_tokens=tokens)
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
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        for line in process.stdout:
            lines.append(line)
            if "Chat running at" in line:
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    out: dict = {}
    try:
        if not ready.wait(600) or process.poll() is not None:
            raise RagError(f"bench: `rag ui` did not start (exit {process.poll()}): {''.join(lines)[-300:]}")
        out["start_s"] = now() - started
        url = re.search(r"https?://\S+", next(line for line in lines if "Chat running at" in line)).group(0)
        from gradio_client import Client

        started = now()
        result = Client(url.rstrip("/").rstrip(".").rstrip(")"), verbose=False).predict(question, api_name="/ask")
        out["answer_s"] = now() - started
        out["answered"] = bool(result and result.get("answer"))
        out["peak_rss_mb"] = peak_rss_mb(process.pid)
    finally:
        stop_process(process)
    bench.details["ui"] = out


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
    """The headline figures (flat, as the issue names them), then the details they come from."""
    from rag.settings import physical_cores

    d, settings = bench.details, bench.settings
    figures: dict = {}
    if "indexing" in d:
        seeds = indexing_figures(d["indexing"]["seeds"])
        synthetic = indexing_figures(d["indexing"]["synthetic"])
        d["indexing"]["seeds"]["figures"], d["indexing"]["synthetic"]["figures"] = seeds, synthetic
        figures.update(
            {
                "index_chunks_per_s": seeds["chunks_per_s"],
                "index_raw_chunks_per_s": seeds["raw_chunks_per_s"],
                "index_overhead_ratio": seeds["overhead_ratio"],
                "index_seconds_p50": seeds["pipeline_s_p50"],
                "index_overhead_ratio_inside": seeds["overhead_ratio_inside"],
                "index_overhead_ratio_inside_synthetic": synthetic["overhead_ratio_inside"],
                "index_seconds_p95": seeds["pipeline_s_p95"],
                "index_chunks": seeds["chunks"],
                "index_chunks_per_s_synthetic": synthetic["chunks_per_s"],
                "index_raw_chunks_per_s_synthetic": synthetic["raw_chunks_per_s"],
                "index_overhead_ratio_synthetic": synthetic["overhead_ratio"],
                "index_chunks_synthetic": synthetic["chunks"],
            }
        )
    if "retrieval" in d:
        r = retrieval_figures(d["retrieval"])
        d["retrieval"]["figures"] = r
        figures.update(
            {
                "retrieve_ms_p50": r["retrieve_ms_p50"],
                "retrieve_ms_p95": r["retrieve_ms_p95"],
                "retrieve_raw_ms_p50": r["raw_ms_p50"],
                "retrieve_raw_ms_p95": r["raw_ms_p95"],
                "query_embed_ms_p50": r["raw_embed_ms_p50"],
            }
        )
    if "large" in d:
        large = d["large"]
        for section in large["by_type"].values():
            section["figures"] = retrieval_figures(section)
        default = large["by_type"][settings.index_type]["figures"]
        flat, hnsw = large["by_type"]["flat"]["figures"], large["by_type"]["hnsw"]["figures"]
        figures.update(
            {
                "large_chunks": large["chunks"],
                "retrieve_ms_p50_100k": default["retrieve_ms_p50"],
                "retrieve_ms_p95_100k": default["retrieve_ms_p95"],
                "retrieve_ms_p50_100k_flat": flat["retrieve_ms_p50"],
                "retrieve_ms_p50_100k_hnsw": hnsw["retrieve_ms_p50"],
                "retrieve_raw_ms_p50_100k_flat": flat["raw_ms_p50"],
                "retrieve_raw_ms_p50_100k_hnsw": hnsw["raw_ms_p50"],
                "faiss_search_ms_p50_100k_flat": flat["raw_search_ms_p50"],
                "faiss_search_ms_p50_100k_hnsw": hnsw["raw_search_ms_p50"],
                "retrieve_raw_ms_p50_100k": default["raw_ms_p50"],
                "ann_recall_at_10": large["ann_recall_at_10"],
                "index_load_s_100k": large["by_type"][settings.index_type]["load_s"],
                "index_write_s_100k_flat": large["by_type"]["flat"]["write_s"],
                "index_write_s_100k_hnsw": large["by_type"]["hnsw"]["write_s"],
            }
        )
    for corpus, section in d.get("milvus", {}).items():
        suffix = "" if corpus == "seeds" else "_100k"
        figures.update(
            {
                f"retrieve_ms_p50{suffix}_faiss": p50(section.get("faiss", [])),
                f"retrieve_ms_p50{suffix}_milvus": p50(section.get("milvus", [])),
                f"milvus_write_s{suffix}": section.get("write_s"),
            }
        )
    if "generation" in d:
        g = d["generation"]
        rows = [r for r in g["questions"] if not r["warm_up"]] or g["questions"]
        ours = [r["llm"] for r in rows if r["llm"]]
        raws = [r["raw"] for r in rows if r["raw"]]

        def rate(calls, key):
            tokens = sum(c[key + "_tokens"] or 0 for c in calls if c[key + "_s"])
            seconds = sum(c[key + "_s"] for c in calls if c[key + "_s"])
            return tokens / seconds if seconds > 0 and tokens > 0 else None

        def prompt(calls):
            perfs = [c["perf"] for c in calls if c["perf"] and c["perf"]["n_p_eval"] > 1]
            seconds = sum(p["t_p_eval_ms"] for p in perfs) / 1000
            return sum(p["n_p_eval"] for p in perfs) / seconds if seconds > 0 else None

        decode, raw_decode = rate(ours, "decode"), rate(raws, "decode")
        first = g["questions"][0]["llm"] if g["questions"] else None
        later = [r["llm"] for r in g["questions"][1:] if r["llm"] and r["llm"]["perf"]]
        figures.update(
            {
                "ttft_ms_p50": p50([r["ttft_ms"] for r in rows if r["ttft_ms"]]),
                "ttft_ms_p95": p95([r["ttft_ms"] for r in rows if r["ttft_ms"]]),
                "ttft_llm_ms_p50": p50([c["ttft_ms"] for c in ours if c["ttft_ms"]]),
                "ttft_raw_ms_p50": p50([c["ttft_ms"] for c in raws if c["ttft_ms"]]),
                "ttft_llm_ratio_vs_raw": p50(
                    [
                        a["ttft_ms"] / b["ttft_ms"]
                        for a, b in zip([r["llm"] for r in rows], [r["raw"] for r in rows])
                        if a and b and a["ttft_ms"] and b["ttft_ms"]
                    ]
                ),
                "retrieve_in_answer_ms_p50": p50(
                    [r["timings_ms"].get("retrieve") for r in rows if r["timings_ms"].get("retrieve") is not None]
                ),
                "passages_ms_p50": p50(
                    [r["timings_ms"].get("passages") for r in rows if r["timings_ms"].get("passages") is not None]
                ),
                "decode_tok_s": decode,
                "decode_raw_tok_s": raw_decode,
                "decode_ratio_vs_raw": ratio(decode, raw_decode),
                "prompt_tok_s": prompt(ours),
                "prompt_raw_tok_s": prompt(raws),
                "prompt_tokens_p50": p50([c["prompt_tokens"] for c in ours if c["prompt_tokens"]]),
                "prefix_reuse": {
                    "system_prompt_tokens": g["system_prompt_tokens"],
                    "first_question_prompt_tokens": first["prompt_tokens"] if first else None,
                    "first_question_evaluated": first["perf"]["n_p_eval"] if first and first["perf"] else None,
                    "next_questions_prompt_tokens_p50": p50([c["prompt_tokens"] for c in later if c["prompt_tokens"]]),
                    "next_questions_evaluated_p50": p50([c["perf"]["n_p_eval"] for c in later]),
                    "next_questions_reused_p50": p50(
                        [c["prompt_tokens"] - c["perf"]["n_p_eval"] for c in later if c["prompt_tokens"]]
                    ),
                },
                "ttft_grid": g["grid"],
            }
        )
    if "cold_start" in d:
        runs = d["cold_start"]["runs"]

        def first(kind: str) -> float | None:
            return p50([r["first_s"] for r in runs.get(kind, []) if r["first_s"]])

        def peak(kind: str) -> float | None:
            return max((r["peak_rss_mb"] for r in runs.get(kind, []) if r["peak_rss_mb"]), default=None)

        figures.update(
            {
                "cold_start_s": first("ask"),
                "cold_start_bare_llm_s": first("bare_llm"),
                "cold_start_retrieve_only_s": first("retrieve_only"),
                "peak_rss_mb": peak("ask"),
                "peak_rss_mb_bare_llm": peak("bare_llm"),
                "peak_rss_mb_retrieve_only": peak("retrieve_only"),
                "cold_start_breakdown_s": d["cold_start"]["breakdown"],
            }
        )
        figures["cold_start_ratio_vs_bare_llm"] = ratio(figures["cold_start_s"], figures["cold_start_bare_llm_s"])
    if "ui" in d:
        figures.update(
            {
                "peak_rss_mb_ui": d["ui"].get("peak_rss_mb"),
                "ui_start_s": d["ui"].get("start_s"),
                "ui_answer_s": d["ui"].get("answer_s"),
            }
        )
    for key in (
        "ttft_ms_p50",
        "ttft_ms_p95",
        "decode_tok_s",
        "decode_ratio_vs_raw",
        "prompt_tok_s",
        "retrieve_ms_p50",
        "retrieve_ms_p95",
        "retrieve_ms_p50_100k",
        "ann_recall_at_10",
        "index_chunks_per_s",
        "index_overhead_ratio",
        "cold_start_s",
        "peak_rss_mb",
        "peak_rss_mb_ui",
    ):
        figures.setdefault(key, None)
    targets = {}
    if "embedders" in d:
        figures.update(embedder_figures(d["embedders"]))
    for key, (op, limit) in (TARGETS | EMBEDDER_TARGETS).items():
        value = figures.get(key)
        holds = None if value is None else (value <= limit if op == "<=" else value >= limit)
        targets[key] = {"value": value, "target": f"{op} {limit:g}", "holds": holds}
    plan = asdict(bench.plan)
    return rounded(
        {
            **figures,
            "cpu_cores": physical_cores(),
            "cpu_logical": os.cpu_count(),
            "threads": settings.threads,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "models": _models(bench),
            "versions": _versions(),
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
            "plan": {**plan, "quick": bench.plan == QUICK},
            "load_average_before": d.get("load_average_before"),
            "load_average_after": d.get("load_average_after"),
            "bench_seconds": d.get("bench_seconds"),
            "targets": targets,
            "details": {
                k: v for k, v in d.items() if k not in ("load_average_before", "load_average_after", "bench_seconds")
            },
        }
    )


def _figure(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def to_markdown(r: dict) -> str:
    """The figures as markdown tables: each with the raw library's figure and the target."""

    def target(key: str | None) -> list[str]:
        t = r["targets"].get(key) if key else None
        if not t:
            return ["", ""]
        return [t["target"], "–" if t["holds"] is None else "yes" if t["holds"] else "**no**"]

    big = f"{r['large_chunks']:,}" if r.get("large_chunks") else "100,000"
    rows = [
        ("Indexing, seeds (chunks/s)", "index_chunks_per_s", "index_raw_chunks_per_s", None, ""),
        ("Indexing, seeds: pipeline / bare encode", "index_overhead_ratio", None, None, "index_overhead_ratio"),
        (
            f"Indexing, synthetic {r.get('index_chunks_synthetic') or ''} chunks (chunks/s)",
            "index_chunks_per_s_synthetic",
            "index_raw_chunks_per_s_synthetic",
            None,
            "",
        ),
        (
            "Indexing, synthetic: pipeline / bare encode",
            "index_overhead_ratio_synthetic",
            None,
            None,
            "index_overhead_ratio_synthetic",
        ),
        (
            "Indexing, seeds / synthetic: pipeline / its own time in encode",
            "index_overhead_ratio_inside",
            "index_overhead_ratio_inside_synthetic",
            None,
            "",
        ),
        ("Retrieve, seeds, p50 (ms)", "retrieve_ms_p50", "retrieve_raw_ms_p50", None, "retrieve_ms_p50"),
        ("Retrieve, seeds, p95 (ms)", "retrieve_ms_p95", "retrieve_raw_ms_p95", None, ""),
        (
            f"Retrieve, {big} chunks, default index ({r['settings']['index_type']}), p50 (ms)",
            "retrieve_ms_p50_100k",
            "retrieve_raw_ms_p50_100k",
            None,
            "retrieve_ms_p50_100k",
        ),
        (
            f"Retrieve, {big} chunks, flat, p50 (ms)",
            "retrieve_ms_p50_100k_flat",
            "retrieve_raw_ms_p50_100k_flat",
            None,
            "",
        ),
        (
            f"Retrieve, {big} chunks, HNSW, p50 (ms)",
            "retrieve_ms_p50_100k_hnsw",
            "retrieve_raw_ms_p50_100k_hnsw",
            None,
            "",
        ),
        (
            "Retrieve, seeds, Milvus store (milvus-lite) p50 (ms); FAISS store, same run",
            "retrieve_ms_p50_milvus",
            "retrieve_ms_p50_faiss",
            None,
            "",
        ),
        (
            f"Retrieve, {big} chunks, flat, Milvus store (milvus-lite) p50 (ms); FAISS store, same run",
            "retrieve_ms_p50_100k_milvus",
            "retrieve_ms_p50_100k_faiss",
            None,
            "",
        ),
        (f"FAISS search alone, {big} chunks, flat, p50 (ms)", "faiss_search_ms_p50_100k_flat", None, None, ""),
        (f"FAISS search alone, {big} chunks, HNSW, p50 (ms)", "faiss_search_ms_p50_100k_hnsw", None, None, ""),
        (f"HNSW recall@10 vs exact search, {big} chunks", "ann_recall_at_10", None, None, ""),
        ("TTFT, question to first token, p50 (ms)", "ttft_ms_p50", None, None, "ttft_ms_p50"),
        ("TTFT, question to first token, p95 (ms)", "ttft_ms_p95", None, None, ""),
        ("TTFT, LLM call to first token, p50 (ms)", "ttft_llm_ms_p50", "ttft_raw_ms_p50", "ttft_llm_ratio_vs_raw", ""),
        ("Decode (tokens/s)", "decode_tok_s", "decode_raw_tok_s", "decode_ratio_vs_raw", "decode_ratio_vs_raw"),
        ("Prompt processing (tokens/s)", "prompt_tok_s", "prompt_raw_tok_s", None, ""),
        (
            "Cold start `ask` to first token (s)",
            "cold_start_s",
            "cold_start_bare_llm_s",
            "cold_start_ratio_vs_bare_llm",
            "cold_start_ratio_vs_bare_llm",
        ),
        (
            "Cold start `ask --retrieve-only` to output (s)",
            "cold_start_retrieve_only_s",
            None,
            None,
            "cold_start_retrieve_only_s",
        ),
        ("Peak RSS `ask` (MB)", "peak_rss_mb", "peak_rss_mb_bare_llm", None, "peak_rss_mb"),
        ("Peak RSS `ask --retrieve-only` (MB)", "peak_rss_mb_retrieve_only", None, None, ""),
        ("Peak RSS `rag ui` after one question (MB)", "peak_rss_mb_ui", None, None, "peak_rss_mb_ui"),
    ]
    table = markdown_table(
        ["figure", "polyglot-rag", "raw library (same work, same run)", "ratio", "target", "holds"],
        [
            [
                label,
                _figure(r.get(ours)),
                _figure(r.get(raw)) if raw else "",
                _figure(r.get(rat)) if rat else "",
                *target(tkey),
            ]
            for label, ours, raw, rat, tkey in rows
        ],
    )
    reuse = r.get("prefix_reuse") or {}
    grid = r.get("ttft_grid") or []
    out = [
        "## Benchmark",
        "",
        f"{r['cpu_cores']} cores ({r['cpu_logical']} logical), {r['threads']} threads, load average "
        f"{r.get('load_average_before')} before and {r.get('load_average_after')} after; "
        f"embedder {r['models']['embedder']['id']}, LLM {r['models']['llm']['id']}; "
        f"{_figure(r.get('bench_seconds'))} s{' (--quick)' if r['plan']['quick'] else ''}.",
        "",
        table,
    ]
    out += embedders_markdown(r)
    if reuse:
        out += [
            "",
            f"KV-cache prefix reuse: the first question evaluated {_figure(reuse.get('first_question_evaluated'))} "
            f"of {_figure(reuse.get('first_question_prompt_tokens'))} prompt tokens; the next ones "
            f"{_figure(reuse.get('next_questions_evaluated_p50'))} of "
            f"{_figure(reuse.get('next_questions_prompt_tokens_p50'))} (p50), reusing "
            f"{_figure(reuse.get('next_questions_reused_p50'))} (system prompt: "
            f"{_figure(reuse.get('system_prompt_tokens'))} tokens).",
        ]
    if grid:
        out += [
            "",
            "TTFT by passages read (system prompt cached):",
            "",
            markdown_table(
                [
                    "passages",
                    "tokens each (max)",
                    "prompt tokens p50",
                    "evaluated p50",
                    "LLM TTFT p50 (ms)",
                    "question to first token p50 (ms)",
                ],
                [
                    [
                        str(g["passages"]),
                        str(g["passage_tokens"]),
                        _figure(g["prompt_tokens_p50"]),
                        _figure(g["evaluated_tokens_p50"]),
                        _figure(g["ttft_llm_ms_p50"]),
                        _figure(g["ttft_ms_p50"]),
                    ]
                    for g in grid
                ],
                right_from=0,
            ),
        ]
    breakdown = r.get("cold_start_breakdown_s") or {}
    if breakdown:
        out += [
            "",
            "Where a cold `ask` spends its time (each step in turn, one new process; s):",
            "",
            markdown_table(["step", "seconds"], [[name, _figure(value)] for name, value in breakdown.items()]),
        ]
    return "\n".join(out) + "\n"


# -- embedders side by side (issue: the better embedder by default) --------------------------
# Kept apart from the sections above: each catalogue embedder in its own processes, so that
# its peak RSS is its own, with the bare library (sentence-transformers) beside it.
EMBEDDER_TARGETS = {
    "embedder_index_time_ratio": ("<=", 2.0),  # the other embedder's seeds index time / e5-small's
    "embedder_question_ms_p50": ("<=", 30.0),
    "embedder_peak_rss_mb_ask": ("<=", 2560.0),  # with the default (1.5B) LLM
}


def bench_embedders(bench: Bench) -> None:
    """For each catalogue embedder: `rag index --rebuild` of the documents and `ask` (with and
    without the LLM) in new processes, their time and peak RSS; in this process, a question's
    embedding (p50) and the bare library's encoding of the same chunks and questions."""
    from models.catalogue import find, names
    from models.provision import provision
    from rag.embedding import load_embedder
    from rag.index import load_index

    settings, env = bench.settings, _child_env(bench.settings)
    questions = bench.questions[: bench.plan.retrieval_questions]
    rows = {}
    for name in names("embedder"):
        bench.say(f"embedders: {name}: `rag index`, `ask --retrieve-only`, `ask` in new processes")
        folder = provision(find(name, "embedder"), settings.models_dir, bench.log)
        index_dir = bench.root / f"embedder-{name}"
        common = ["--docs", str(settings.docs_dir), "--index", str(index_dir), "--embedder", name]
        built = first_output(_venv_script("rag") + ["index", "--rebuild", "--json", *common], env, timeout=1800)
        if built["status"] != 0:
            raise RagError(f"bench: rag index --embedder {name} failed: {built['stderr'].strip()[-300:]}")
        report = json.loads(built["stdout"].strip().splitlines()[-1])
        runs = {}
        for kind, extra in (("retrieve_only", ["--retrieve-only"]), ("ask", [])):
            command = _venv_script("ask") + [*common, *_without_embedder(bench.passthrough), *extra, questions[0]]
            result = first_output(command, env, timeout=900)
            if result["status"] != 0:
                raise RagError(f"bench: ask --embedder {name} failed: {result['stderr'].strip()[-300:]}")
            runs[kind] = {k: result[k] for k in ("total_s", "peak_rss_mb")}
        embedder = load_embedder(str(folder), settings.threads)
        chunks = [c.text for c in load_index(index_dir).chunks]
        embedder.encode_queries(questions[:2])  # warm-up
        question_ms = []
        for question in questions:
            started = now()
            embedder.encode_queries([question])
            question_ms.append((now() - started) * 1000)
        del embedder
        reference = reference_embedder(str(folder), settings.threads)
        raw_encode(reference, chunks[:8], "passage")  # warm-up
        started = now()
        raw_encode(reference, chunks, "passage")
        raw_index_s = now() - started
        raw_ms = []
        for question in questions:
            started = now()
            raw_encode(reference, [question], "query", batch_size=1)
            raw_ms.append((now() - started) * 1000)
        del reference
        rows[name] = {
            "chunks": report["chunks_embedded"],
            "index_s": report["seconds"],
            "index_process_s": built["total_s"],
            "raw_index_s": raw_index_s,
            "peak_rss_mb_index": built["peak_rss_mb"],
            "question_ms": question_ms,
            "raw_question_ms": raw_ms,
            "runs": runs,
        }
    bench.details["embedders"] = rows


def _without_embedder(arguments: list[str]) -> list[str]:
    """Flags passed on to child processes, less any --embedder (each run names its own)."""
    out, skip = [], False
    for argument in arguments:
        if skip:
            skip = False
        elif argument == "--embedder":
            skip = True
        else:
            out.append(argument)
    return out


def embedder_figures(rows: dict) -> dict:
    """Flat figures per embedder (`embedder_<figure>_<name>`), and the targets' figures for
    the embedder that is not e5-small against e5-small."""
    figures = {}
    for name, row in rows.items():
        key = name.replace("-", "_")
        figures |= {
            f"embedder_chunks_per_s_{key}": ratio(row["chunks"], row["index_s"]),
            f"embedder_raw_chunks_per_s_{key}": ratio(row["chunks"], row["raw_index_s"]),
            f"embedder_question_ms_p50_{key}": p50(row["question_ms"]),
            f"embedder_raw_question_ms_p50_{key}": p50(row["raw_question_ms"]),
            f"embedder_peak_rss_mb_index_{key}": row["peak_rss_mb_index"],
            f"embedder_peak_rss_mb_retrieve_only_{key}": row["runs"]["retrieve_only"]["peak_rss_mb"],
            f"embedder_peak_rss_mb_ask_{key}": row["runs"]["ask"]["peak_rss_mb"],
        }
    other = next((name for name in rows if name != "e5-small"), None)
    if other and "e5-small" in rows:
        figures |= {
            "embedder_index_time_ratio": ratio(rows[other]["index_s"], rows["e5-small"]["index_s"]),
            "embedder_question_ms_p50": p50(rows[other]["question_ms"]),
            "embedder_peak_rss_mb_ask": rows[other]["runs"]["ask"]["peak_rss_mb"],
        }
    return figures


def embedders_markdown(r: dict) -> list[str]:
    """The embedders' table, one row per embedder, when the section ran."""
    names = [key.removeprefix("embedder_chunks_per_s_") for key in r if key.startswith("embedder_chunks_per_s_")]
    if not names:
        return []
    rows = [
        [
            name.replace("_", "-"),
            _figure(r.get(f"embedder_chunks_per_s_{name}")),
            _figure(r.get(f"embedder_raw_chunks_per_s_{name}")),
            _figure(r.get(f"embedder_question_ms_p50_{name}")),
            _figure(r.get(f"embedder_raw_question_ms_p50_{name}")),
            _figure(r.get(f"embedder_peak_rss_mb_index_{name}")),
            _figure(r.get(f"embedder_peak_rss_mb_retrieve_only_{name}")),
            _figure(r.get(f"embedder_peak_rss_mb_ask_{name}")),
        ]
        for name in names
    ]
    targets = [
        f"{key} = {_figure(r.get(key))} (target {op} {limit:g})" for key, (op, limit) in EMBEDDER_TARGETS.items()
    ]
    return [
        "",
        "Embedders side by side (seeds; each in new processes; bare library: sentence-transformers):",
        "",
        markdown_table(
            [
                "embedder",
                "index chunks/s",
                "bare chunks/s",
                "question ms p50",
                "bare question ms p50",
                "peak RSS `rag index` (MB)",
                "peak RSS `ask --retrieve-only` (MB)",
                "peak RSS `ask` (MB)",
            ],
            rows,
        ),
        "",
        "; ".join(targets) + ".",
    ]


command = Command("measure speed and memory against the raw libraries", add_arguments, run)
