"""Measuring instruments for the bench: timed and instrumented stand-ins for the Embedder and
LLM seams, the bare libraries doing the same work, and child processes' start-up and memory."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rag.llm import LLM
from rag.store import EMBED_BATCH


def now() -> float:
    return time.perf_counter()


class TimedEmbedder:
    """The real embedder, timing what the index build spends inside `encode_passages`."""

    def __init__(self, embedder) -> None:
        self._embedder = embedder
        self.id, self.dim = embedder.id, embedder.dim
        self.seconds = 0.0
        self.texts = 0  # what was embedded, and in how many calls: a regression's count, not its time
        self.calls = 0

    def count_tokens(self, text: str) -> int:
        return self._embedder.count_tokens(text)

    def encode_queries(self, texts):
        return self._embedder.encode_queries(texts)

    def encode_passages(self, texts, batch_size: int = EMBED_BATCH, show_progress: bool = False):
        started = now()
        self.texts += len(texts)
        self.calls += 1
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
    return model.encode(
        texts,
        prompt_name=prompt_name(model, kind),
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )


def llama_perf(llama) -> dict | None:
    """llama.cpp's own counters for a context: prompt and decode tokens and milliseconds."""
    import llama_cpp

    try:
        data = llama_cpp.llama_perf_context(llama.ctx)
    except Exception:
        return None
    return {
        "n_p_eval": int(data.n_p_eval),
        "t_p_eval_ms": float(data.t_p_eval_ms),
        "n_eval": int(data.n_eval),
        "t_eval_ms": float(data.t_eval_ms),
    }


def llama_perf_reset(llama) -> None:
    import llama_cpp

    try:
        llama_cpp.llama_perf_context_reset(llama.ctx)
    except Exception:
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
    """An LLM (the seam of rag/llm.py) that records every call of the LLM it wraps: arguments,
    timings, and llama.cpp's own counters when the wrapped LLM runs llama.cpp in this process."""

    def __init__(self, llm: LLM) -> None:
        self.llm = llm
        self.id = llm.id
        self.calls: list[LlmCall] = []
        # Calls that continue an answer already written (a second try, a translation): kept
        # apart, so that `calls` holds one answer's call per question as the bench reads it.
        self.follow_ons: list[LlmCall] = []
        self._chosen_at: float | None = None  # when the call's choice of passage began
        self._answered = False  # a call has answered since the last choice of passage
        model = getattr(llm, "model", None)
        self.llama = model if hasattr(model, "ctx") else None

    def count_tokens(self, text: str) -> int:
        return self.llm.count_tokens(text)

    def choose(self, messages, prefix, options):
        if self.llama is not None:
            llama_perf_reset(self.llama)
        self._chosen_at, self._answered = now(), False
        return self.llm.choose(messages, prefix, options)

    def score(self, messages, prefix, text):
        return self.llm.score(messages, prefix, text)

    def stream(
        self, messages, max_tokens, temperature, grammar=None, prefix="", copy_from=None, logprobs=None
    ) -> Iterator[str]:
        """Timed from the choice of passage before it, if any: both are the call's prompt processing."""
        call = LlmCall(messages, max_tokens, temperature, grammar)
        if self.llama is not None and self._chosen_at is None:
            llama_perf_reset(self.llama)
        after_choice = self._chosen_at is not None
        call.started, self._chosen_at = self._chosen_at or now(), None
        pieces = []
        for piece in self.llm.stream(
            messages, max_tokens, temperature, grammar=grammar, prefix=prefix, copy_from=copy_from
        ):
            if call.first is None:
                call.first = now()
            pieces.append(piece)
            yield piece
        call.ended = now()
        call.pieces, call.text = len(pieces), "".join(pieces)
        if self.llama is not None:
            call.perf = llama_perf(self.llama)
            call.context_tokens = int(self.llama.n_tokens)
        (self.follow_ons if self._answered else self.calls).append(call)
        self._answered = self._answered or after_choice


def raw_chat(llama, call: LlmCall, grammars: dict) -> LlmCall:
    """The same messages and sampling through `llama_cpp.Llama.create_chat_completion`."""
    from llama_cpp import LlamaGrammar

    if call.grammar is not None and call.grammar not in grammars:
        grammars[call.grammar] = LlamaGrammar.from_string(call.grammar, verbose=False)
    out = LlmCall(call.messages, call.max_tokens, call.temperature, call.grammar)
    llama_perf_reset(llama)
    out.started = now()
    pieces = []
    for chunk in llama.create_chat_completion(
        call.messages,
        stream=True,
        max_tokens=call.max_tokens,
        temperature=call.temperature,
        seed=0,
        grammar=grammars.get(call.grammar),
    ):
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
    except Exception:
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
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=errors, stdin=subprocess.DEVNULL, env=env, cwd=cwd
        )
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
    return {
        "first_s": first - started if first_byte else None,
        "total_s": ended - started,
        "peak_rss_mb": peak,
        "stdout": (first_byte + rest).decode("utf-8", errors="replace"),
        "stderr": stderr,
        "status": process.returncode,
    }


def stop_process(process: subprocess.Popen) -> None:
    """Stop a child the bench started: Ctrl+C first (the app closes its server), then harder."""
    for sig, wait in ((signal.SIGINT, 30), (signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        if process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


# The bare library's cold start: llama.cpp loads the same GGUF and streams the same messages
# (with the same grammar) as a recorded `ask`; the figure `ask`'s cold start is held against.
BARE_LLM_COLD_START = r"""
import sys, json
spec = json.loads(sys.argv[1])
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

# Where a cold `ask` spends its time: the same steps, one after the other, in a new process,
# each timed (imports, model checks, embedder, index, LLM, then one question). Prints JSON.
COLD_BREAKDOWN = r"""
import hashlib, json, sys, time
spec = json.loads(sys.argv[1])
seconds = {}
def timed(name, work):
    started = time.perf_counter()
    value = work()
    seconds[name] = time.perf_counter() - started
    return value
started = time.perf_counter()
timed("import numpy", lambda: __import__("numpy"))
timed("import rag (faiss, the pipeline's modules)", lambda: __import__("rag.assistant"))
from pathlib import Path
from rag.assistant import Assistant
from rag.settings import load_settings
settings = load_settings(docs_dir=Path(spec["docs"]), index_dir=Path(spec["index"]))
assistant = Assistant(settings, log=lambda message: None)
def model_checks():
    from models.provision import provision
    for model in (settings.embedder_model, settings.llm_model):
        if model is not None:
            provision(model, settings.models_dir, lambda message: None)
timed("model checks (stamps: sizes and mtimes)", model_checks)
timed("import onnxruntime", lambda: __import__("onnxruntime"))
timed("embedder load (tokenizer, ONNX Runtime session)", lambda: assistant.embedder)
def checksums():
    from rag.index import _current_generation
    folder = _current_generation(settings.index_dir)[0]
    for path in folder.rglob("*"):
        if path.is_file():
            hashlib.sha256(path.read_bytes()).hexdigest()
timed("index checksums (sha256 of every file, part of the load)", checksums)
timed("index load (checksums, FAISS, BM25 matrix, tables)", lambda: assistant.index)
timed("import llama_cpp", lambda: __import__("llama_cpp"))
timed("LLM load (GGUF memory-mapped)", lambda: assistant.llm)
answer = timed("question to first token, models loaded", lambda: assistant.ask(spec["question"]))
seconds.update({f"answer timing {name} (its own clock)": ms / 1000 for name, ms in answer.timings_ms.items()})
seconds["total, in sequence"] = time.perf_counter() - started
print(json.dumps({name: round(value, 4) for name, value in seconds.items()}))
"""


def reference_embedder(name: str, threads: int):
    """The bare library the pipeline's embedding is held against: sentence-transformers."""
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    return SentenceTransformer(name, device="cpu")
