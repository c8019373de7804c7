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
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rag.cli import Command
from rag.errors import RagError
from rag.settings import given_flags, settings_from_args

from .evaluation import percentile

SEED = 6  # synthetic corpora and vectors are the same in every run
SYNTHETIC_LANGUAGES = ("en", "ko", "zh", "id")
PARAGRAPHS_PER_FILE = 50
CHUNKS_PER_FILE_LARGE = 1000
EMBED_BATCH = 32  # as rag.index._embed
ANN_K = 10

# The targets, on this machine (README, performance).
TARGETS = {
    "index_overhead_ratio": ("<=", 1.15),
    "index_overhead_ratio_synthetic": ("<=", 1.15),
    "retrieve_ms_p50": ("<=", 40.0),
    "retrieve_ms_p50_100k": ("<=", 60.0),
    "ttft_ms_p50": ("<=", 2000.0),
    "decode_ratio_vs_raw": (">=", 0.95),
    "cold_start_s": ("<=", 6.0),
    "peak_rss_mb": ("<=", 2048.0),
    "peak_rss_mb_ui": ("<=", 2560.0),
}

FALLBACK_QUESTIONS = [
    "How many public PRs did Codex generate according to the Korean summary?",
    "OpenAI는 메타의 '초지능' 팀에 최소 몇 명의 연구원을 잃었나요?",
    "根据中文摘要,作者一共面试了多少家人工智能公司?",
    "Berapa minggu Codex dibangun dan diluncurkan?",
]


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
    cold_runs: int = 2
    raw_cold_runs: int = 1
    # Repetitions beyond the first are dropped when the bench runs behind this many seconds
    # (scaled by each section's share), so a busy machine still finishes in under 10 minutes.
    budget_s: float | None = 540


QUICK = Plan(index_reps=1, synthetic_paragraphs=400, synthetic_raw_share=1.0, retrieval_questions=10,
             retrieval_reps=1, large_chunks=5000, recall_queries=30, generation_questions=2,
             grid=((1, 96), (3, 96)), grid_questions=1, cold_runs=1, raw_cold_runs=1, budget_s=None)
SECTIONS = ("indexing", "retrieval", "large", "generation", "startup", "ui")


# -- command line --------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Measure indexing, retrieval, generation, start-up and memory, each against the raw "
                          "library doing the same work in the same run. Builds its own indexes in a temporary "
                          "folder from --docs (--index is not used). About 8 minutes on 2 cores; --quick: 2-4.")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.add_argument("--out", type=Path, help="also write bench.json and bench.md into this folder")
    parser.add_argument("--quick", action="store_true",
                        help="fewer repetitions and smaller synthetic corpora (for tests)")
    parser.add_argument("--skip", action="append", choices=SECTIONS, default=[],
                        help="leave a section out (repeatable); its figures are null")


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    passthrough = []  # the bench builds its own indexes: --docs and --index are not passed on
    for flag, value in given_flags(args):
        if flag not in ("--docs", "--index"):
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


# -- statistics ----------------------------------------------------------------------------
def p50(values: list[float]) -> float | None:
    return percentile(values, 50)


def p95(values: list[float]) -> float | None:
    return percentile(values, 95)


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def _round(value, digits: int = 3):
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: _round(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [_round(v, digits) for v in value]
    return value


def now() -> float:
    return time.perf_counter()


# -- synthetic corpora -----------------------------------------------------------------------
_SENTENCE = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])")


def seed_sentences(documents) -> dict[str, list[str]]:
    """The documents' sentences by language (of the sentence itself), sorted, without repeats."""
    from rag.language import detect_language

    found: dict[str, set[str]] = {}
    for document in documents:
        for paragraph in document.paragraphs:
            for sentence in _SENTENCE.split(paragraph.text):
                sentence = sentence.strip()
                if len(sentence) >= 8:
                    found.setdefault(detect_language(sentence), set()).add(sentence)
    return {language: sorted(found[language]) for language in SYNTHETIC_LANGUAGES if found.get(language)}


def synthetic_paragraphs(sentences: dict[str, list[str]], count: int, mix: tuple[int, ...] = (1, 1, 1, 1, 2),
                         seed: int = SEED) -> list[tuple[str, str]]:
    """`count` (language, paragraph) pairs, the languages taking turns; each paragraph a random
    mix of a few sentences of one language. Deterministic for a given seed."""
    if not sentences:
        raise RagError("the documents have no sentences to build a synthetic corpus from")
    rng = random.Random(seed)
    languages = sorted(sentences)
    out = []
    for n in range(count):
        language = languages[n % len(languages)]
        pool = sentences[language]
        picked = [pool[rng.randrange(len(pool))] for _ in range(rng.choice(mix))]
        out.append((language, ("" if language in ("zh", "ja") else " ").join(picked)))
    return out


def write_corpus(folder: Path, paragraphs: list[tuple[str, str]], per_file: int = PARAGRAPHS_PER_FILE) -> int:
    """Files of `per_file` paragraphs each, one language per file; the number of files."""
    by_language: dict[str, list[str]] = {}
    for language, text in paragraphs:
        by_language.setdefault(language, []).append(text)
    files = 0
    for language, texts in sorted(by_language.items()):
        (folder / language).mkdir(parents=True, exist_ok=True)
        for start in range(0, len(texts), per_file):
            (folder / language / f"{language}-{start // per_file:04d}.txt").write_text(
                "\n".join(texts[start:start + per_file]) + "\n", encoding="utf-8")
            files += 1
    return files


def gaussian_vectors(real, languages: list[str], count: int, out_languages: list[str], seed: int = SEED):
    """`count` unit vectors drawn, language by language, from a Gaussian with the mean and
    covariance of real chunk embeddings: random, but with the anisotropy and the language
    clusters of the real thing (isotropic random vectors have no neighbours worth finding,
    which says nothing about an approximate index's recall on embeddings)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    real = np.asarray(real, dtype=np.float64)
    labels = np.array(languages)
    vectors = np.zeros((count, real.shape[1]), dtype=np.float32)
    wanted = np.array(out_languages)
    for language in sorted(set(out_languages)):
        rows = np.flatnonzero(wanted == language)
        sample = real[labels == language] if (labels == language).sum() >= 8 else real
        mean = sample.mean(axis=0)
        covariance = np.cov(sample, rowvar=False) + 1e-6 * np.eye(real.shape[1])
        values, basis = np.linalg.eigh(covariance)
        transform = basis * np.sqrt(np.clip(values, 0, None))
        drawn = mean + rng.standard_normal((len(rows), real.shape[1])) @ transform.T
        vectors[rows] = (drawn / np.linalg.norm(drawn, axis=1, keepdims=True)).astype(np.float32)
    return vectors


def load_questions(limit: int | None = None) -> list[str]:
    """Typical questions: the gold set's answerable ones, the languages taking turns."""
    from rag.settings import PROJECT_ROOT

    gold = PROJECT_ROOT / "eval" / "gold.jsonl"
    by_language: dict[str, list[str]] = {}
    try:
        for line in gold.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                if row.get("answers") and row.get("kind") != "unanswerable":
                    by_language.setdefault(row.get("lang", "?"), []).append(row["question"])
    except (OSError, ValueError, KeyError):
        by_language = {}
    if not by_language:
        return FALLBACK_QUESTIONS[:limit]
    ordered, lists = [], [by_language[k] for k in sorted(by_language)]
    for i in range(max(len(x) for x in lists)):
        ordered.extend(x[i] for x in lists if i < len(x))
    return ordered[:limit]


# -- measuring helpers ---------------------------------------------------------------------
class TimedEmbedder:
    """The real embedder, timing what the index build spends inside `encode_passages`."""

    def __init__(self, embedder) -> None:
        self._embedder = embedder
        self.id, self.dim = embedder.id, embedder.dim
        self.seconds = 0.0

    def count_tokens(self, text: str) -> int:
        return self._embedder.count_tokens(text)

    def encode_queries(self, texts):
        return self._embedder.encode_queries(texts)

    def encode_passages(self, texts, batch_size: int = 32, show_progress: bool = False):
        started = now()
        try:
            return self._embedder.encode_passages(texts, batch_size=batch_size, show_progress=show_progress)
        finally:
            self.seconds += now() - started


def prompt_name(model, kind: str) -> str | None:
    prompts = getattr(model, "prompts", None) or {}
    names = ("query",) if kind == "query" else ("passage", "document")
    return next((name for name in names if name in prompts), None)


def raw_encode(model, texts: list[str], kind: str, batch_size: int = EMBED_BATCH):
    """SentenceTransformer.encode alone: the limit for the pipeline's embedding."""
    return model.encode(texts, prompt_name=prompt_name(model, kind), batch_size=batch_size,
                        normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)


def llama_perf(llama) -> dict | None:
    """llama.cpp's own counters for a context: prompt and decode tokens and milliseconds."""
    import llama_cpp

    try:
        data = llama_cpp.llama_perf_context(llama.ctx)
    except Exception:  # noqa: BLE001 - counters are optional (another backend, an older build)
        return None
    return {"n_p_eval": int(data.n_p_eval), "t_p_eval_ms": float(data.t_p_eval_ms),
            "n_eval": int(data.n_eval), "t_eval_ms": float(data.t_eval_ms)}


def llama_perf_reset(llama) -> None:
    import llama_cpp

    try:
        llama_cpp.llama_perf_context_reset(llama.ctx)
    except Exception:  # noqa: BLE001
        pass


@dataclass
class LlmCall:
    messages: list
    max_tokens: int
    temperature: float
    grammar: str | None
    started: float = 0.0
    first: float | None = None
    ended: float = 0.0
    pieces: int = 0
    text: str = ""
    perf: dict | None = None
    context_tokens: int | None = None  # tokens in the KV cache afterwards (prompt + evaluated answer)

    @property
    def ttft_ms(self) -> float | None:
        return None if self.first is None else (self.first - self.started) * 1000

    @property
    def prompt_tokens(self) -> int | None:
        if self.perf is None or self.context_tokens is None:
            return None
        return self.context_tokens - self.perf["n_eval"]

    @property
    def decode_window(self) -> tuple[int, float] | None:
        """(tokens decoded after the first, seconds from the first piece to the end)."""
        if self.perf is None or self.first is None or self.ended <= self.first:
            return None
        return self.perf["n_eval"], self.ended - self.first


class LlmProbe:
    """Records every call of an LLM's `stream` (arguments, timings, llama.cpp counters)
    by wrapping the method on that one object; `close` puts the original back."""

    def __init__(self, llm) -> None:
        self.llm = llm
        self.original = llm.stream
        self.calls: list[LlmCall] = []
        self.llama = getattr(llm, "model", None) if hasattr(getattr(llm, "model", None), "ctx") else None
        llm.stream = self.stream

    def close(self) -> None:
        try:
            del self.llm.stream
        except AttributeError:
            pass

    def stream(self, messages, max_tokens, temperature, grammar=None) -> Iterator[str]:
        call = LlmCall(messages, max_tokens, temperature, grammar)
        if self.llama is not None:
            llama_perf_reset(self.llama)
        call.started = now()
        pieces = []
        for piece in self.original(messages, max_tokens, temperature, grammar=grammar):
            if call.first is None:
                call.first = now()
            pieces.append(piece)
            yield piece
        call.ended = now()
        call.pieces, call.text = len(pieces), "".join(pieces)
        if self.llama is not None:
            call.perf = llama_perf(self.llama)
            call.context_tokens = int(self.llama.n_tokens)
        self.calls.append(call)


def raw_chat(llama, call: LlmCall, grammars: dict) -> LlmCall:
    """The same messages and sampling through `llama_cpp.Llama.create_chat_completion`."""
    from llama_cpp import LlamaGrammar

    if call.grammar is not None and call.grammar not in grammars:
        grammars[call.grammar] = LlamaGrammar.from_string(call.grammar, verbose=False)
    out = LlmCall(call.messages, call.max_tokens, call.temperature, call.grammar)
    llama_perf_reset(llama)
    out.started = now()
    pieces = []
    for chunk in llama.create_chat_completion(call.messages, stream=True, max_tokens=call.max_tokens,
                                              temperature=call.temperature, seed=0,
                                              grammar=grammars.get(call.grammar)):
        text = chunk["choices"][0]["delta"].get("content")
        if text:
            if out.first is None:
                out.first = now()
            pieces.append(text)
    out.ended = now()
    out.pieces, out.text = len(pieces), "".join(pieces)
    out.perf = llama_perf(llama)
    out.context_tokens = int(llama.n_tokens)
    return out


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def peak_rss_mb(pid: int) -> float | None:
    """Peak resident memory (VmHWM) of a live process and its children, in MiB."""
    total, found = 0.0, False
    pids = [pid]
    try:
        import psutil

        pids += [child.pid for child in psutil.Process(pid).children(recursive=True)]
    except Exception:  # noqa: BLE001 - children are a refinement
        pass
    for each in pids:
        try:
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) / 1024
                    found = True
        except (OSError, ValueError):
            continue
    return total if found else None


class RssWatcher:
    """Polls a child's peak resident memory (VmHWM, its own and its children's) until stopped.

    Not wait4's ru_maxrss: a child forked from this big process inherits the parent's high-water
    mark through exec, so that figure is this bench's size, not the child's."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid, self.interval, self.peak = pid, interval, None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            value = peak_rss_mb(self.pid)
            if value is not None and (self.peak is None or value > self.peak):
                self.peak = value
            self._stop.wait(self.interval)

    def stop(self) -> float | None:
        self._stop.set()
        self._thread.join()
        return self.peak


def first_output(command: list[str], env: dict, timeout: float, cwd: Path | None = None) -> dict:
    """Run a command to its end: seconds to its first byte on stdout, total seconds, its peak
    RSS, output and exit status. The process is killed after `timeout` s."""
    with tempfile.TemporaryFile() as errors:
        started = now()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, stdin=subprocess.DEVNULL,
                                   env=env, cwd=cwd)
        watcher = RssWatcher(process.pid)
        timer = threading.Timer(timeout, process.kill)
        timer.start()
        try:
            first_byte = os.read(process.stdout.fileno(), 1)
            first = now()
            rest = process.stdout.read()
            process.wait()
            ended = now()
        finally:
            timer.cancel()
            peak = watcher.stop()
            process.stdout.close()
        errors.seek(0)
        stderr = errors.read().decode("utf-8", errors="replace")
    return {"first_s": first - started if first_byte else None, "total_s": ended - started,
            "peak_rss_mb": peak, "stdout": (first_byte + rest).decode("utf-8", errors="replace"),
            "stderr": stderr, "status": process.returncode}


RAW_COLD_START = r"""
import sys, json
spec = json.loads(sys.argv[1])
import torch
torch.set_num_threads(spec["threads"])
from sentence_transformers import SentenceTransformer
model = SentenceTransformer(spec["embedder"], device="cpu")
model.encode([spec["question"]], prompt_name=spec["query_prompt"], normalize_embeddings=True)
import llama_cpp
llama = llama_cpp.Llama(model_path=spec["llm"], n_ctx=spec["n_ctx"], n_threads=spec["threads"],
                        n_threads_batch=spec["threads"], n_batch=512, use_mmap=True, verbose=False)
grammar = llama_cpp.LlamaGrammar.from_string(spec["grammar"], verbose=False) if spec["grammar"] else None
for chunk in llama.create_chat_completion(spec["messages"], stream=True, max_tokens=spec["max_tokens"],
                                          temperature=spec["temperature"], seed=0, grammar=grammar):
    text = chunk["choices"][0]["delta"].get("content")
    if text:
        sys.stdout.write(text)
        sys.stdout.flush()
print()
"""


# -- the bench -----------------------------------------------------------------------------
@dataclass
class Bench:
    settings: object
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
    llm_call: LlmCall | None = None  # one recorded LLM call, replayed by the bare-library cold start

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
        """Another Assistant sharing this process's loaded models (they are loaded once)."""
        from rag.assistant import Assistant

        other = Assistant(self.settings.replace(**changes), log=self.log)
        for part in ("_embedder", "_llm"):
            if getattr(self.assistant, part, None) is not None and hasattr(other, part):
                setattr(other, part, getattr(self.assistant, part))
        return other


def run_bench(settings, plan: Plan = Plan(), skip: set[str] = frozenset(), passthrough: list[str] | None = None,
              log: Callable[[str], None] | None = None) -> dict:
    """Every measurement, as one JSON-ready dict (see `summary`)."""
    from rag.assistant import Assistant
    from rag.index import exists

    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    load_before = os.getloadavg()
    root = Path(tempfile.mkdtemp(prefix="rag-bench-"))
    bench = Bench(settings, plan, root, log, passthrough or [])
    try:
        bench.questions = load_questions()
        bench.say(f"loading the embedder ({settings.embedder_name}); working in {root}")
        bench.assistant = Assistant(settings.replace(index_dir=root / "seeds-index"), log=log)
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
        if "large" not in skip:
            bench_large(bench)
        if "generation" not in skip:
            bench_generation(bench)
        if "startup" not in skip:
            bench_cold_start(bench)
        if "ui" not in skip:
            bench_ui(bench)
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
        raw_encode(embedder.model, texts, "passage")
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
    bench.say(f"indexing a synthetic corpus: {len(paragraphs)} paragraphs in {files} files "
              f"({', '.join(sorted(sentences))}), then bare encoding of "
              f"{'the same chunks' if share >= 1 else f'a random {share:.0%} of the same chunks'}")
    total, inside, index = pipeline(docs, bench.root / "synthetic-index")
    texts = [c.text for c in index.chunks]
    sample = texts if share >= 1 else random.Random(SEED).sample(texts, max(1, round(len(texts) * share)))
    # The bare encoding time of all the chunks, extrapolated from the sample's when it is one.
    bare = raw(sample) * len(texts) / len(sample)
    synthetic = {"paragraphs": len(paragraphs), "files": files, "languages": sorted(sentences),
                 "sentences_by_language": {k: len(v) for k, v in sentences.items()}, "chunks": len(texts),
                 "raw_sample_chunks": len(sample),
                 "runs": [{"pipeline_s": total, "encode_inside_s": inside, "raw_encode_s": bare}]}
    # Real embeddings of many chunks in four languages: the shape of the 100k synthetic vectors.
    bench.real_vectors, bench.real_languages = index.raw_vectors(), [c.language for c in index.chunks]
    del index
    shutil.rmtree(bench.root / "synthetic-index", ignore_errors=True)
    shutil.rmtree(docs, ignore_errors=True)
    bench.details["indexing"] = {"seeds": seeds, "synthetic": synthetic, "batch_size": EMBED_BATCH,
                                 "index_type": settings.index_type}


def indexing_figures(section: dict) -> dict:
    chunks, runs = section["chunks"], section["runs"]
    pipeline = [r["pipeline_s"] for r in runs]
    bare = [r["raw_encode_s"] for r in runs]
    return {"chunks": chunks, "pipeline_s_p50": p50(pipeline), "pipeline_s_p95": p95(pipeline),
            "raw_encode_s_p50": p50(bare), "raw_encode_s_p95": p95(bare),
            "chunks_per_s": ratio(chunks, p50(pipeline)), "raw_chunks_per_s": ratio(chunks, p50(bare)),
            # pipeline time / bare encoding time, pair by pair (the pairs ran back to back)
            "overhead_ratio": p50([r["pipeline_s"] / r["raw_encode_s"] for r in runs]),
            "encode_share": p50([r["encode_inside_s"] / r["pipeline_s"] for r in runs]),
            # pipeline time / the time it spent inside SentenceTransformer.encode: the same texts and
            # batches at the same moment, so the load on the machine cancels out exactly
            "overhead_ratio_inside": p50([r["pipeline_s"] / r["encode_inside_s"] for r in runs if r["encode_inside_s"]])}


# -- retrieval -----------------------------------------------------------------------------
def time_retrieval(assistant, questions: list[str], reps: int, candidates: int,
                   behind: Callable[[], bool] = lambda: False) -> dict:
    """Assistant.retrieve against bare encode + FAISS search, pairs interleaved."""
    import numpy as np

    embedder = assistant.embedder
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
                assistant.retrieve(question)
                ours.append((now() - started) * 1000)

            def library():
                started = now()
                vector = raw_encode(embedder.model, [question], "query")
                middle = now()
                index.vectors.search(np.ascontiguousarray(vector, dtype=np.float32), min(candidates, len(index.chunks)))
                ended = now()
                bare.append((ended - started) * 1000)
                embed.append((middle - started) * 1000)
                search.append((ended - middle) * 1000)

            for step in ((pipeline, library) if (rep + n) % 2 == 0 else (library, pipeline)):
                step()
    return {"questions": len(questions), "reps": reps, "retrieve_ms": ours, "raw_ms": bare,
            "raw_embed_ms": embed, "raw_search_ms": search}


def retrieval_figures(section: dict) -> dict:
    ours, bare = section["retrieve_ms"], section["raw_ms"]
    return {"retrieve_ms_p50": p50(ours), "retrieve_ms_p95": p95(ours),
            "raw_ms_p50": p50(bare), "raw_ms_p95": p95(bare),
            "raw_embed_ms_p50": p50(section["raw_embed_ms"]), "raw_search_ms_p50": p50(section["raw_search_ms"]),
            "overhead_ms_p50": p50([a - b for a, b in zip(ours, bare)])}


def bench_retrieval(bench: Bench) -> None:
    from rag.retrieval import CANDIDATES

    plan = bench.plan
    questions = bench.questions[:plan.retrieval_questions]
    bench.say(f"retrieval on the seeds index: {len(questions)} questions x {plan.retrieval_reps}")
    bench.details["retrieval"] = time_retrieval(bench.assistant, questions, plan.retrieval_reps, CANDIDATES,
                                                lambda: bench.behind("seeds retrieval repetitions", 0.38))


def bench_large(bench: Bench) -> None:
    """A synthetic index of `large_chunks` chunks written and loaded by rag/index.py, searched
    through Assistant.retrieve, flat and HNSW; HNSW's recall@10 against the exact search."""
    import hashlib

    import numpy as np

    from rag.chunking import Chunk, ChunkingSettings
    from rag.documents import Document, Paragraph, read_documents
    from rag.index import INDEX_FORMAT, KEYWORDS, VECTORS, _write_generation
    from rag.retrieval import CANDIDATES

    settings, plan = bench.settings, bench.plan
    embedder = bench.assistant.embedder
    count = plan.large_chunks
    documents_in, _ = read_documents(settings.docs_dir)
    texts = synthetic_paragraphs(seed_sentences(documents_in), count, mix=(2, 3, 3, 4), seed=SEED + 1)
    languages = [language for language, _ in texts]
    bench.say(f"{count} synthetic chunks: vectors from a Gaussian fitted to {len(bench.real_languages)} real "
              f"chunk embeddings")
    vectors = gaussian_vectors(bench.real_vectors, bench.real_languages, count, languages)
    chunks, documents, files = [], [], {}
    for start in range(0, count, CHUNKS_PER_FILE_LARGE):
        name = f"synthetic/{start // CHUNKS_PER_FILE_LARGE:04d}.txt"
        part = texts[start:start + CHUNKS_PER_FILE_LARGE]
        paragraphs = tuple(Paragraph(name, n, text) for n, (_, text) in enumerate(part, 1))
        chunks += [Chunk(name, n, n, text, language) for n, (language, text) in enumerate(part, 1)]
        sha = hashlib.sha256("\n".join(p.text for p in paragraphs).encode()).hexdigest()
        documents.append(Document(name, sha, part[0][0], paragraphs))
        files[name] = {"sha256": sha, "language": part[0][0], "paragraphs": len(part), "chunks": len(part)}
    chunking = ChunkingSettings(settings.chunk_tokens, settings.chunk_overlap)
    questions = bench.questions[:plan.retrieval_questions]
    query_vectors = embedder.encode_queries(bench.questions[:plan.recall_queries])
    found: dict[str, np.ndarray] = {}
    out: dict = {"chunks": count, "dim": int(vectors.shape[1]), "vectors": "gaussian fitted to real embeddings",
                 "by_type": {}}
    # The default index type first; the other one after it.
    for index_type in sorted(("flat", "hnsw"), key=lambda t: t != settings.index_type):
        folder = bench.root / f"large-{index_type}"
        manifest = {"format": INDEX_FORMAT, "embedder": {"id": embedder.id, "dim": embedder.dim},
                    "chunking": chunking.to_json(), "index_type": index_type, "files": files}
        bench.say(f"{count} chunks, {index_type}: writing the index (FAISS, BM25, tables, checksums)")
        folder.mkdir(parents=True)
        started = now()
        _write_generation(folder, manifest, chunks, documents, vectors)
        write_s = now() - started
        assistant = bench.assistant_for(index_dir=folder, index_type=index_type)
        started = now()
        index = assistant.index  # load_index: checksums, FAISS, BM25, tables
        load_s = now() - started
        bench.say(f"{count} chunks, {index_type}: {len(questions)} questions x {plan.large_reps}")
        timing = time_retrieval(assistant, questions, plan.large_reps, CANDIDATES)
        found[index_type] = index.vectors.search(query_vectors, ANN_K)[1]
        if index_type == "hnsw":
            hnsw = index.vectors.hnsw
            out["hnsw"] = {"M": int(hnsw.nb_neighbors(1)), "efSearch": int(hnsw.efSearch),
                           "efConstruction": int(hnsw.efConstruction)}
            approximate_by_ef = {}
            for ef in (32, 64, 128, 256):
                hnsw.efSearch = ef
                started = now()
                approximate_by_ef[ef] = index.vectors.search(query_vectors, ANN_K)[1]
                approximate_by_ef[ef] = (approximate_by_ef[ef], (now() - started) * 1000 / len(query_vectors))
            hnsw.efSearch = out["hnsw"]["efSearch"]
        out["by_type"][index_type] = {"write_s": write_s, "load_s": load_s, "disk_mb": folder_mb(folder),
                                      "vectors_mb": (index.folder / VECTORS).stat().st_size / 2**20,
                                      "keywords_mb": folder_mb(index.folder / KEYWORDS),
                                      **timing}
        del assistant, index
        shutil.rmtree(folder, ignore_errors=True)
    exact = found["flat"]

    def recall(approximate) -> float:
        return float(np.mean([len(set(exact[i]) & set(approximate[i])) / ANN_K for i in range(len(exact))]))

    out["ann_recall_at_10"] = recall(found["hnsw"])
    out["recall_queries"] = len(exact)
    # batch search time per query (all queries at once), so only comparable within this table
    out["recall_by_ef_search"] = [{"efSearch": ef, "recall_at_10": recall(result), "ms_per_query_batched": ms}
                                  for ef, (result, ms) in approximate_by_ef.items()]
    bench.details["large"] = out


# -- generation ----------------------------------------------------------------------------
def bench_generation(bench: Bench) -> None:
    settings, plan = bench.settings, bench.plan
    assistant = bench.assistant
    from rag.assistant import Done, Token

    bench.say("loading the LLM")
    started = now()
    llm = assistant.llm
    load_s = now() - started
    probe = LlmProbe(llm)
    raw_llama = None
    if probe.llama is not None:
        import llama_cpp

        raw_llama = llama_cpp.Llama(model_path=str(settings.llm_path), n_ctx=settings.context_tokens,
                                    n_threads=settings.threads, n_threads_batch=settings.threads, n_batch=512,
                                    use_mmap=True, verbose=False)
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
        return {"question": question, "ttft_ms": (first - started) * 1000 if first else None,
                "timings_ms": dict(answer.timings_ms), "abstained": answer.abstained, "answer": answer.text,
                "call": call}

    try:
        # Typical questions, each through the Assistant, then the same messages through the bare
        # library (each keeps its own KV cache, so both see the same prefix to reuse); the first
        # question the LLM answers warms both up and is left out of the figures.
        bench.say(f"generation: {plan.generation_questions} questions through the Assistant and llama_cpp.Llama")
        measured, refused_early, warm = [], 0, False
        for question in bench.questions[: plan.generation_questions * 4]:
            if len(measured) >= plan.generation_questions or (
                    len(measured) >= 3 and bench.behind("generation questions", 0.72)):
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
        grid = ttft_grid(bench, probe, ask) if bench.answered else []
        system_tokens = llm.count_tokens(_system_prompt()) if hasattr(llm, "count_tokens") else None
    finally:
        probe.close()
    bench.details["generation"] = {"llm_load_s": load_s, "questions": [_call_row(r) for r in measured],
                                   "refused_before_llm": refused_early, "grid": grid,
                                   "system_prompt_tokens": system_tokens,
                                   "max_tokens": settings.max_tokens, "passages": settings.passages,
                                   "passage_tokens": settings.passage_tokens, "threads": settings.threads}
    del raw_llama


def _system_prompt() -> str:
    from rag import prompts

    return prompts.SYSTEM


def _call_row(result: dict) -> dict:
    def call_json(call: LlmCall | None) -> dict | None:
        if call is None:
            return None
        window = call.decode_window
        return {"ttft_ms": call.ttft_ms, "pieces": call.pieces, "text": call.text, "perf": call.perf,
                "prompt_tokens": call.prompt_tokens,
                "decode_tokens": window[0] if window else None, "decode_s": window[1] if window else None}

    return {"question": result["question"], "warm_up": result.get("warm_up", False),
            "ttft_ms": result["ttft_ms"], "timings_ms": result["timings_ms"], "abstained": result["abstained"],
            "answer": result["answer"], "llm": call_json(result["call"]), "raw": call_json(result.get("raw"))}


def ttft_grid(bench: Bench, probe: LlmProbe, ask) -> list[dict]:
    """TTFT against the number and size of passages, with the system prompt in the KV cache
    (as in a running UI): before each question a one-token call with the system prompt alone."""
    plan, base = bench.plan, bench.assistant.settings
    questions = bench.answered[1:1 + plan.grid_questions] or bench.answered[:plan.grid_questions]
    rows = []
    bench.say(f"TTFT by passages: (passages, tokens) in {list(plan.grid)} x {len(questions)} questions")
    prime = [{"role": "system", "content": _system_prompt()}, {"role": "user", "content": "."}]
    try:
        for cell, (passages, tokens) in enumerate(plan.grid):
            if cell >= 3 and bench.behind(f"TTFT cell {passages} x {tokens}", 0.80):
                continue
            bench.assistant.settings = base.replace(passages=passages, passage_tokens=tokens)
            cells = []
            for question in questions:
                for _ in probe.original(prime, 1, 0.0):
                    pass
                result = ask(question, max_tokens=1)
                if result["call"] is not None:
                    cells.append(result)
            rows.append({
                "passages": passages, "passage_tokens": tokens, "n": len(cells),
                "prompt_tokens_p50": p50([c["call"].prompt_tokens for c in cells if c["call"].prompt_tokens]),
                "evaluated_tokens_p50": p50([c["call"].perf["n_p_eval"] for c in cells if c["call"].perf]),
                "ttft_llm_ms_p50": p50([c["call"].ttft_ms for c in cells if c["call"].ttft_ms]),
                "ttft_ms_p50": p50([c["ttft_ms"] for c in cells if c["ttft_ms"]])})
    finally:
        bench.assistant.settings = base
    return rows


# -- start-up and memory ---------------------------------------------------------------------
def _venv_script(name: str) -> list[str]:
    script = Path(sys.executable).parent / name
    if script.is_file():
        return [str(script)]
    entry = {"ask": "ask_main", "rag": "rag_main"}[name]
    return [sys.executable, "-c", f"import sys; from rag.cli import {entry}; sys.exit({entry}(sys.argv[1:]))"]


def _child_env(settings) -> dict:
    return {**os.environ, "RAG_THREADS": str(settings.threads), "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false"}


def bench_cold_start(bench: Bench) -> None:
    """`ask` in a fresh process against the bare libraries loading the same two models and
    generating from the same messages; runs interleaved."""
    settings, plan = bench.settings, bench.plan
    question = (bench.answered or bench.questions)[0]
    command = _venv_script("ask") + ["--docs", str(settings.docs_dir), "--index", str(bench.seeds_index),
                                     *bench.passthrough, question]
    runs, raw_runs = [], []
    raw_command = None
    call = bench.llm_call
    if call is not None and not settings.llm_url:
        embedder_model = bench.assistant.embedder.model
        spec = {"threads": settings.threads, "embedder": settings.embedder_name,
                "question": question, "query_prompt": prompt_name(embedder_model, "query"),
                "llm": str(settings.llm_path), "n_ctx": settings.context_tokens, "messages": call.messages,
                "max_tokens": call.max_tokens, "temperature": call.temperature, "grammar": call.grammar}
        raw_command = [sys.executable, "-c", RAW_COLD_START, json.dumps(spec, ensure_ascii=False)]
    bench.say(f"cold start: `ask` in a new process x {plan.cold_runs}, the bare libraries x {plan.raw_cold_runs}")
    env = _child_env(settings)
    for rep in range(max(plan.cold_runs, plan.raw_cold_runs)):
        order = [("ask", command if rep < plan.cold_runs else None),
                 ("raw", raw_command if rep < plan.raw_cold_runs else None)]
        for kind, cmd in (order if rep % 2 == 0 else order[::-1]):
            if cmd is None or (rep >= 1 and bench.behind(f"cold start run {rep + 1} ({kind})", 0.90)):
                continue
            result = first_output(cmd, env, timeout=600)
            if result["status"] != 0:
                tail = (result["stderr"].strip().splitlines() or ["no output"])[-1]
                raise RagError(f"bench: {'`ask`' if kind == 'ask' else 'the bare-library script'} "
                               f"failed ({result['status']}): {tail}")
            row = {k: result[k] for k in ("first_s", "total_s", "peak_rss_mb")}
            (runs if kind == "ask" else raw_runs).append(row)
    bench.details["cold_start"] = {"question": question, "ask": runs, "raw": raw_runs}


def bench_ui(bench: Bench) -> None:
    """`rag ui` on a free port: start-up, one question through gradio_client, peak RSS."""
    settings = bench.settings
    question = (bench.answered or bench.questions)[0]
    port = free_port()
    command = _venv_script("rag") + ["ui", "--port", str(port), "--docs", str(settings.docs_dir),
                                     "--index", str(bench.seeds_index), "--read-only", *bench.passthrough]
    bench.say(f"`rag ui` on port {port}: start, one question through gradio_client, peak RSS")
    started = now()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               stdin=subprocess.DEVNULL, env=_child_env(settings), text=True)
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
        _stop(process)
    bench.details["ui"] = out


def _stop(process: subprocess.Popen) -> None:
    """Stop a child this bench started: Ctrl+C first (the app closes its server), then harder."""
    for sig, wait in ((signal.SIGINT, 30), (signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        if process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


# -- results ---------------------------------------------------------------------------------
def _models(bench: Bench) -> dict:
    settings = bench.settings
    embedder = bench.assistant.embedder
    path = Path(settings.embedder_name)
    models = {"embedder": {"id": embedder.id, "dim": embedder.dim, "path": str(path) if path.exists() else None,
                           "size_mb": folder_mb(path) if path.is_dir() else None}}
    if settings.llm_url:
        models["llm"] = {"id": settings.llm_url, "url": settings.llm_url}
    else:
        llm = settings.llm_path
        models["llm"] = {"id": llm.name, "path": str(llm),
                         "size_mb": llm.stat().st_size / 2**20 if llm.is_file() else None}
    return models


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "sentence-transformers", "transformers", "faiss-cpu", "bm25s", "llama-cpp-python",
                 "gradio"):
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
        figures.update({
            "index_chunks_per_s": seeds["chunks_per_s"], "index_raw_chunks_per_s": seeds["raw_chunks_per_s"],
            "index_overhead_ratio": seeds["overhead_ratio"], "index_seconds_p50": seeds["pipeline_s_p50"],
            "index_overhead_ratio_inside": seeds["overhead_ratio_inside"],
            "index_overhead_ratio_inside_synthetic": synthetic["overhead_ratio_inside"],
            "index_seconds_p95": seeds["pipeline_s_p95"], "index_chunks": seeds["chunks"],
            "index_chunks_per_s_synthetic": synthetic["chunks_per_s"],
            "index_raw_chunks_per_s_synthetic": synthetic["raw_chunks_per_s"],
            "index_overhead_ratio_synthetic": synthetic["overhead_ratio"],
            "index_chunks_synthetic": synthetic["chunks"]})
    if "retrieval" in d:
        r = retrieval_figures(d["retrieval"])
        d["retrieval"]["figures"] = r
        figures.update({"retrieve_ms_p50": r["retrieve_ms_p50"], "retrieve_ms_p95": r["retrieve_ms_p95"],
                        "retrieve_raw_ms_p50": r["raw_ms_p50"], "retrieve_raw_ms_p95": r["raw_ms_p95"],
                        "query_embed_ms_p50": r["raw_embed_ms_p50"]})
    if "large" in d:
        large = d["large"]
        for index_type, section in large["by_type"].items():
            section["figures"] = retrieval_figures(section)
        default = large["by_type"][settings.index_type]["figures"]
        flat, hnsw = large["by_type"]["flat"]["figures"], large["by_type"]["hnsw"]["figures"]
        figures.update({
            "large_chunks": large["chunks"],
            "retrieve_ms_p50_100k": default["retrieve_ms_p50"], "retrieve_ms_p95_100k": default["retrieve_ms_p95"],
            "retrieve_ms_p50_100k_flat": flat["retrieve_ms_p50"], "retrieve_ms_p50_100k_hnsw": hnsw["retrieve_ms_p50"],
            "retrieve_raw_ms_p50_100k_flat": flat["raw_ms_p50"], "retrieve_raw_ms_p50_100k_hnsw": hnsw["raw_ms_p50"],
            "faiss_search_ms_p50_100k_flat": flat["raw_search_ms_p50"],
            "faiss_search_ms_p50_100k_hnsw": hnsw["raw_search_ms_p50"],
            "retrieve_raw_ms_p50_100k": default["raw_ms_p50"],
            "ann_recall_at_10": large["ann_recall_at_10"],
            "index_load_s_100k": large["by_type"][settings.index_type]["load_s"],
            "index_write_s_100k_flat": large["by_type"]["flat"]["write_s"],
            "index_write_s_100k_hnsw": large["by_type"]["hnsw"]["write_s"]})
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
        figures.update({
            "ttft_ms_p50": p50([r["ttft_ms"] for r in rows if r["ttft_ms"]]),
            "ttft_ms_p95": p95([r["ttft_ms"] for r in rows if r["ttft_ms"]]),
            "ttft_llm_ms_p50": p50([c["ttft_ms"] for c in ours if c["ttft_ms"]]),
            "ttft_raw_ms_p50": p50([c["ttft_ms"] for c in raws if c["ttft_ms"]]),
            "ttft_llm_ratio_vs_raw": p50([a["ttft_ms"] / b["ttft_ms"] for a, b in
                                         zip([r["llm"] for r in rows], [r["raw"] for r in rows])
                                         if a and b and a["ttft_ms"] and b["ttft_ms"]]),
            "retrieve_in_answer_ms_p50": p50([r["timings_ms"].get("retrieve") for r in rows
                                              if r["timings_ms"].get("retrieve") is not None]),
            "passages_ms_p50": p50([r["timings_ms"].get("passages") for r in rows
                                    if r["timings_ms"].get("passages") is not None]),
            "decode_tok_s": decode, "decode_raw_tok_s": raw_decode,
            "decode_ratio_vs_raw": ratio(decode, raw_decode),
            "prompt_tok_s": prompt(ours), "prompt_raw_tok_s": prompt(raws),
            "prompt_tokens_p50": p50([c["prompt_tokens"] for c in ours if c["prompt_tokens"]]),
            "prefix_reuse": {
                "system_prompt_tokens": g["system_prompt_tokens"],
                "first_question_prompt_tokens": first["prompt_tokens"] if first else None,
                "first_question_evaluated": first["perf"]["n_p_eval"] if first and first["perf"] else None,
                "next_questions_prompt_tokens_p50": p50([c["prompt_tokens"] for c in later if c["prompt_tokens"]]),
                "next_questions_evaluated_p50": p50([c["perf"]["n_p_eval"] for c in later]),
                "next_questions_reused_p50": p50([c["prompt_tokens"] - c["perf"]["n_p_eval"] for c in later
                                                  if c["prompt_tokens"]])},
            "ttft_grid": g["grid"]})
    if "cold_start" in d:
        c = d["cold_start"]
        figures.update({
            "cold_start_s": p50([r["first_s"] for r in c["ask"] if r["first_s"]]),
            "cold_start_s_p95": p95([r["first_s"] for r in c["ask"] if r["first_s"]]),
            "cold_start_raw_s": p50([r["first_s"] for r in c["raw"] if r["first_s"]]),
            "peak_rss_mb": max((r["peak_rss_mb"] for r in c["ask"] if r["peak_rss_mb"]), default=None),
            "peak_rss_mb_raw": max((r["peak_rss_mb"] for r in c["raw"] if r["peak_rss_mb"]), default=None)})
        figures["cold_start_ratio_vs_raw"] = ratio(figures["cold_start_s"], figures["cold_start_raw_s"])
    if "ui" in d:
        figures.update({"peak_rss_mb_ui": d["ui"].get("peak_rss_mb"), "ui_start_s": d["ui"].get("start_s"),
                        "ui_answer_s": d["ui"].get("answer_s")})
    for key in ("ttft_ms_p50", "ttft_ms_p95", "decode_tok_s", "decode_ratio_vs_raw", "prompt_tok_s",
                "retrieve_ms_p50", "retrieve_ms_p95", "retrieve_ms_p50_100k", "ann_recall_at_10",
                "index_chunks_per_s", "index_overhead_ratio", "cold_start_s", "peak_rss_mb", "peak_rss_mb_ui"):
        figures.setdefault(key, None)
    targets = {}
    for key, (op, limit) in TARGETS.items():
        value = figures.get(key)
        holds = None if value is None else (value <= limit if op == "<=" else value >= limit)
        targets[key] = {"value": value, "target": f"{op} {limit:g}", "holds": holds}
    plan = asdict(bench.plan)
    return _round({
        **figures,
        "cpu_cores": physical_cores(), "cpu_logical": os.cpu_count(), "threads": settings.threads,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "models": _models(bench), "versions": _versions(),
        "settings": {"k": settings.k, "passages": settings.passages, "passage_tokens": settings.passage_tokens,
                     "retrieval": settings.retrieval, "index_type": settings.index_type,
                     "chunk_tokens": settings.chunk_tokens, "max_tokens": settings.max_tokens,
                     "context_tokens": settings.context_tokens, "docs": str(settings.docs_dir)},
        "plan": {**plan, "quick": bench.plan == QUICK},
        "load_average_before": d.get("load_average_before"), "load_average_after": d.get("load_average_after"),
        "bench_seconds": d.get("bench_seconds"),
        "targets": targets,
        "details": {k: v for k, v in d.items() if k not in ("load_average_before", "load_average_after",
                                                              "bench_seconds")},
    })


def _fmt(value, unit: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        text = f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}" if abs(value) < 1000 else f"{value:,.0f}"
    else:
        text = str(value)
    return text + unit


def to_markdown(r: dict) -> str:
    """The figures as markdown tables: each with the raw library's figure and the target."""
    def target(key: str) -> str:
        t = r["targets"].get(key)
        if not t:
            return ""
        mark = "–" if t["holds"] is None else "yes" if t["holds"] else "**no**"
        return f"{t['target']} | {mark}"

    big = f"{r['large_chunks']:,}" if r.get("large_chunks") else "100,000"
    rows = [
        ("Indexing, seeds (chunks/s)", "index_chunks_per_s", "index_raw_chunks_per_s", None, ""),
        ("Indexing, seeds: pipeline / bare encode", "index_overhead_ratio", None, None, "index_overhead_ratio"),
        (f"Indexing, synthetic {r.get('index_chunks_synthetic') or ''} chunks (chunks/s)",
         "index_chunks_per_s_synthetic", "index_raw_chunks_per_s_synthetic", None, ""),
        ("Indexing, synthetic: pipeline / bare encode", "index_overhead_ratio_synthetic", None, None,
         "index_overhead_ratio_synthetic"),
        ("Indexing, seeds / synthetic: pipeline / its own time in encode", "index_overhead_ratio_inside",
         "index_overhead_ratio_inside_synthetic", None, ""),
        ("Retrieve, seeds, p50 (ms)", "retrieve_ms_p50", "retrieve_raw_ms_p50", None, "retrieve_ms_p50"),
        ("Retrieve, seeds, p95 (ms)", "retrieve_ms_p95", "retrieve_raw_ms_p95", None, ""),
        (f"Retrieve, {big} chunks, default index ({r['settings']['index_type']}), p50 (ms)",
         "retrieve_ms_p50_100k",
         "retrieve_raw_ms_p50_100k", None, "retrieve_ms_p50_100k"),
        (f"Retrieve, {big} chunks, flat, p50 (ms)", "retrieve_ms_p50_100k_flat", "retrieve_raw_ms_p50_100k_flat", None, ""),
        (f"Retrieve, {big} chunks, HNSW, p50 (ms)", "retrieve_ms_p50_100k_hnsw", "retrieve_raw_ms_p50_100k_hnsw", None, ""),
        (f"FAISS search alone, {big} chunks, flat, p50 (ms)", "faiss_search_ms_p50_100k_flat", None, None, ""),
        (f"FAISS search alone, {big} chunks, HNSW, p50 (ms)", "faiss_search_ms_p50_100k_hnsw", None, None, ""),
        (f"HNSW recall@10 vs exact search, {big} chunks", "ann_recall_at_10", None, None, ""),
        ("TTFT, question to first token, p50 (ms)", "ttft_ms_p50", None, None, "ttft_ms_p50"),
        ("TTFT, question to first token, p95 (ms)", "ttft_ms_p95", None, None, ""),
        ("TTFT, LLM call to first token, p50 (ms)", "ttft_llm_ms_p50", "ttft_raw_ms_p50", "ttft_llm_ratio_vs_raw", ""),
        ("Decode (tokens/s)", "decode_tok_s", "decode_raw_tok_s", "decode_ratio_vs_raw", "decode_ratio_vs_raw"),
        ("Prompt processing (tokens/s)", "prompt_tok_s", "prompt_raw_tok_s", None, ""),
        ("Cold start `ask` to first token (s)", "cold_start_s", "cold_start_raw_s", "cold_start_ratio_vs_raw",
         "cold_start_s"),
        ("Peak RSS `ask` (MB)", "peak_rss_mb", "peak_rss_mb_raw", None, "peak_rss_mb"),
        ("Peak RSS `rag ui` after one question (MB)", "peak_rss_mb_ui", None, None, "peak_rss_mb_ui"),
    ]
    lines = ["| figure | polyglot-rag | raw library (same work, same run) | ratio | target | holds |",
             "|---|---|---|---|---|---|"]
    for label, ours, raw, rat, tkey in rows:
        lines.append(f"| {label} | {_fmt(r.get(ours))} | {_fmt(r.get(raw)) if raw else ''} | "
                     f"{_fmt(r.get(rat)) if rat else ''} | {target(tkey) if tkey else ' | '} |")
    reuse = r.get("prefix_reuse") or {}
    grid = r.get("ttft_grid") or []
    out = ["## Benchmark", "",
           f"{r['cpu_cores']} cores ({r['cpu_logical']} logical), {r['threads']} threads, load average "
           f"{r.get('load_average_before')} before and {r.get('load_average_after')} after; "
           f"embedder {r['models']['embedder']['id']}, LLM {r['models']['llm']['id']}; "
           f"{_fmt(r.get('bench_seconds'))} s{' (--quick)' if r['plan']['quick'] else ''}.", "", *lines]
    if reuse:
        out += ["", f"KV-cache prefix reuse: the first question evaluated {_fmt(reuse.get('first_question_evaluated'))} "
                    f"of {_fmt(reuse.get('first_question_prompt_tokens'))} prompt tokens; the next ones "
                    f"{_fmt(reuse.get('next_questions_evaluated_p50'))} of "
                    f"{_fmt(reuse.get('next_questions_prompt_tokens_p50'))} (p50), reusing "
                    f"{_fmt(reuse.get('next_questions_reused_p50'))} (system prompt: "
                    f"{_fmt(reuse.get('system_prompt_tokens'))} tokens)."]
    if grid:
        out += ["", "TTFT by passages read (system prompt cached):", "",
                "| passages | tokens each (max) | prompt tokens p50 | evaluated p50 | LLM TTFT p50 (ms) | question to first token p50 (ms) |",
                "|---|---|---|---|---|---|"]
        out += [f"| {g['passages']} | {g['passage_tokens']} | {_fmt(g['prompt_tokens_p50'])} | "
                f"{_fmt(g['evaluated_tokens_p50'])} | {_fmt(g['ttft_llm_ms_p50'])} | {_fmt(g['ttft_ms_p50'])} |"
                for g in grid]
    return "\n".join(out) + "\n"


command = Command("measure speed and memory against the raw libraries", add_arguments, run)
