"""The figures `rag bench` reports, each declared once: its JSON key, name, unit, how it is
measured (a function of the bench's raw measurements), its target and what it is shown beside.

The JSON (`bench.json`, `--json`), the Markdown tables (`bench_render.py`), the README's table
of current figures and the tests all read these declarations; adding a figure is one
`Figure(...)` below. The measuring itself is `bench.py`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .metrics import p50, p95, ratio


@dataclass(frozen=True)
class Figure:
    key: str  # the JSON key
    name: str  # what the Markdown row says; may hold {big}, {index_type} or {synthetic_chunks}
    unit: str  # "" for a plain number or ratio
    how: str  # how it is measured, in a line
    value: Callable[[Mapping[str, dict]], float | int | None]  # from the views of `views()`
    target: tuple[str, float] | None = None  # ("<=" or ">=", limit): the target, on this machine
    beside: str | None = None  # the key shown beside it: the bare library's figure (or the other store)
    ratio: str | None = None  # the key of its ratio to that figure, shown in the same row
    row: bool = False  # a row of its own in the Markdown table

    def label(self, **run) -> str:
        """The row's label, e.g. "Retrieve, seeds, p50 (ms)"; `run` fills in the run's sizes."""
        name = self.name.format(**run) if run else self.name
        return f"{name} ({self.unit})" if self.unit else name

    def holds(self, value) -> bool | None:
        if self.target is None or value is None:
            return None
        op, limit = self.target
        return value <= limit if op == "<=" else value >= limit

    def target_text(self) -> str:
        op, limit = self.target
        return f"{op} {limit:g}"


# -- views: the raw measurements of each section, summarised once ---------------------------
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


def _generation_view(g: dict) -> dict:
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

    def timing(step):
        return [r["timings_ms"].get(step) for r in rows if r["timings_ms"].get(step) is not None]

    return {
        "ttft_ms": [r["ttft_ms"] for r in rows if r["ttft_ms"]],
        "ttft_llm_ms": [c["ttft_ms"] for c in ours if c["ttft_ms"]],
        "ttft_raw_ms": [c["ttft_ms"] for c in raws if c["ttft_ms"]],
        "ttft_ratios": [
            a["ttft_ms"] / b["ttft_ms"]
            for a, b in zip([r["llm"] for r in rows], [r["raw"] for r in rows])
            if a and b and a["ttft_ms"] and b["ttft_ms"]
        ],
        "retrieve_ms": timing("retrieve"),
        "passages_ms": timing("passages"),
        "decode_tok_s": rate(ours, "decode"),
        "decode_raw_tok_s": rate(raws, "decode"),
        "prompt_tok_s": prompt(ours),
        "prompt_raw_tok_s": prompt(raws),
        "prompt_tokens": [c["prompt_tokens"] for c in ours if c["prompt_tokens"]],
    }


def _cold_start_view(runs: dict) -> dict:
    return {
        "first_s": {kind: p50([r["first_s"] for r in rs if r["first_s"]]) for kind, rs in runs.items()},
        "peak_rss_mb": {
            kind: max((r["peak_rss_mb"] for r in rs if r["peak_rss_mb"]), default=None) for kind, rs in runs.items()
        },
    }


def _embedders_view(section: dict) -> dict:
    """Per embedder (by catalogue name, the measured ones): its summary; and `index_time_ratio`,
    EmbeddingGemma's `rag index` time over e5-small's, pair by pair (they ran in turn)."""
    out: dict = {}
    for name, e in section["by_embedder"].items():
        if "missing" in e:
            continue
        seconds = [r["total_s"] for r in e["index_runs"]]
        out[name] = {
            "index_s_p50": p50(seconds),
            "chunks_per_s": ratio(e["chunks"], p50(seconds)),
            "raw_chunks_per_s": ratio(e["chunks"], p50(e["raw_encode_s"])),
            "index_peak_rss_mb": max((r["peak_rss_mb"] for r in e["index_runs"] if r["peak_rss_mb"]), default=None),
            "question_ms_p50": p50(e["question_ms"]),
            "raw_question_ms_p50": p50(e["raw_question_ms"] or []),
            "ask_peak_rss_mb": e["ask"]["peak_rss_mb"],
        }
    if "gemma-300m" in out and "e5-small" in out:
        pairs = zip(
            section["by_embedder"]["gemma-300m"]["index_runs"], section["by_embedder"]["e5-small"]["index_runs"]
        )
        out["index_time_ratio"] = p50([gemma["total_s"] / e5["total_s"] for gemma, e5 in pairs])
    return out


def views(details: dict, index_type: str) -> dict[str, dict]:
    """Each measured section's summary, keyed by section (a skipped section has none). The
    indexing, retrieval and large-corpus summaries are also kept in `details` under "figures"."""
    out: dict[str, dict] = {}
    if "indexing" in details:
        for corpus in ("seeds", "synthetic"):
            section = details["indexing"][corpus]
            section["figures"] = out[f"indexing.{corpus}"] = indexing_figures(section)
    if "retrieval" in details:
        details["retrieval"]["figures"] = out["retrieval"] = retrieval_figures(details["retrieval"])
    if "large" in details:
        large = details["large"]
        out["large"] = large
        for kind, section in large["by_type"].items():
            section["figures"] = out[f"large.{kind}"] = retrieval_figures(section)
        out["large.default"] = {**out[f"large.{index_type}"], "load_s": large["by_type"][index_type]["load_s"]}
    for corpus, section in details.get("milvus", {}).items():
        out[f"milvus.{corpus}"] = section
    if "generation" in details:
        out["generation"] = _generation_view(details["generation"])
    if "cold_start" in details:
        out["cold_start"] = _cold_start_view(details["cold_start"]["runs"])
    if "ui" in details:
        out["ui"] = details["ui"]
    if "embedders" in details:
        out["embedders"] = _embedders_view(details["embedders"])
    if details.get("ui_memory", {}).get("rss_mb"):
        rss = details["ui_memory"]["rss_mb"]  # after n questions (as text, a JSON key) -> MB
        ordered = [rss[n] for n in sorted(rss, key=int)]
        out["ui_memory"] = {"early": ordered[0], "late": ordered[-1]}
    return out


def _p50_of(view: str, key: str) -> Callable[[Mapping[str, dict]], float | None]:
    return lambda v: p50(v[view].get(key, []))


# -- the figures, in the order of the Markdown table -----------------------------------------
BARE_ENCODE = "SentenceTransformer.encode alone on the same chunk texts, batch size and prompt"
BARE_RUN = "onnxruntime.InferenceSession.run alone (the embedder's own session)"
FIGURES: tuple[Figure, ...] = (
    # indexing: update_index(rebuild=True) against the bare encoder, pairs back to back
    Figure(
        "index_chunks_per_s",
        "Indexing, seeds",
        "chunks/s",
        "chunks of the documents / p50 of update_index(rebuild=True)",
        lambda v: v["indexing.seeds"]["chunks_per_s"],
        beside="index_raw_chunks_per_s",
        row=True,
    ),
    Figure(
        "index_raw_chunks_per_s",
        "Indexing, seeds, bare encode",
        "chunks/s",
        BARE_ENCODE,
        lambda v: v["indexing.seeds"]["raw_chunks_per_s"],
    ),
    Figure(
        "index_overhead_ratio",
        "Indexing, seeds: pipeline / bare encode",
        "",
        "p50 over back-to-back pairs of rebuild time / bare encoding time",
        lambda v: v["indexing.seeds"]["overhead_ratio"],
        target=("<=", 1.15),
        row=True,
    ),
    Figure(
        "index_seconds_p50",
        "Indexing, seeds, rebuild p50",
        "s",
        "update_index(rebuild=True) on the documents",
        lambda v: v["indexing.seeds"]["pipeline_s_p50"],
    ),
    Figure(
        "index_seconds_p95",
        "Indexing, seeds, rebuild p95",
        "s",
        "update_index(rebuild=True) on the documents",
        lambda v: v["indexing.seeds"]["pipeline_s_p95"],
    ),
    Figure("index_chunks", "Chunks of the documents", "", "counted", lambda v: v["indexing.seeds"]["chunks"]),
    Figure(
        "index_chunks_per_s_synthetic",
        "Indexing, synthetic {synthetic_chunks} chunks",
        "chunks/s",
        "chunks of ~5,000 synthetic paragraphs in four languages / update_index(rebuild=True) time",
        lambda v: v["indexing.synthetic"]["chunks_per_s"],
        beside="index_raw_chunks_per_s_synthetic",
        row=True,
    ),
    Figure(
        "index_raw_chunks_per_s_synthetic",
        "Indexing, synthetic, bare encode",
        "chunks/s",
        BARE_ENCODE + " (a sample, extrapolated)",
        lambda v: v["indexing.synthetic"]["raw_chunks_per_s"],
    ),
    Figure(
        "index_overhead_ratio_synthetic",
        "Indexing, synthetic: pipeline / bare encode",
        "",
        "rebuild time / bare encoding time of the same chunks",
        lambda v: v["indexing.synthetic"]["overhead_ratio"],
        target=("<=", 1.15),
        row=True,
    ),
    Figure(
        "index_chunks_synthetic",
        "Chunks of the synthetic corpus",
        "",
        "counted",
        lambda v: v["indexing.synthetic"]["chunks"],
    ),
    Figure(
        "index_overhead_ratio_inside",
        "Indexing, seeds / synthetic: pipeline / its own time in encode",
        "",
        "rebuild time / the time the same rebuild spent inside the embedder (load cancels out)",
        lambda v: v["indexing.seeds"]["overhead_ratio_inside"],
        beside="index_overhead_ratio_inside_synthetic",
        row=True,
    ),
    Figure(
        "index_overhead_ratio_inside_synthetic",
        "Indexing, synthetic: pipeline / its own time in encode",
        "",
        "as for the seeds",
        lambda v: v["indexing.synthetic"]["overhead_ratio_inside"],
    ),
    # retrieval: Assistant.retrieve against bare encode + FAISS search, pairs interleaved
    Figure(
        "retrieve_ms_p50",
        "Retrieve, seeds, p50",
        "ms",
        "Assistant.retrieve (embed + FAISS + BM25 + fusion) on typical questions",
        lambda v: v["retrieval"]["retrieve_ms_p50"],
        target=("<=", 40.0),
        beside="retrieve_raw_ms_p50",
        row=True,
    ),
    Figure(
        "retrieve_ms_p95",
        "Retrieve, seeds, p95",
        "ms",
        "as the p50",
        lambda v: v["retrieval"]["retrieve_ms_p95"],
        beside="retrieve_raw_ms_p95",
        row=True,
    ),
    Figure(
        "retrieve_raw_ms_p50",
        "Retrieve, seeds, bare encode + FAISS search, p50",
        "ms",
        "SentenceTransformer.encode + IndexFlatIP.search",
        lambda v: v["retrieval"]["raw_ms_p50"],
    ),
    Figure(
        "retrieve_raw_ms_p95",
        "Retrieve, seeds, bare encode + FAISS search, p95",
        "ms",
        "as the p50",
        lambda v: v["retrieval"]["raw_ms_p95"],
    ),
    Figure(
        "query_embed_ms_p50",
        "Bare query embedding, p50",
        "ms",
        "SentenceTransformer.encode of one question",
        lambda v: v["retrieval"]["raw_embed_ms_p50"],
    ),
    # a large synthetic index, written and loaded by rag/index.py
    Figure("large_chunks", "Chunks of the large index", "", "counted", lambda v: v["large"]["chunks"]),
    Figure(
        "retrieve_ms_p50_100k",
        "Retrieve, {big} chunks, default index ({index_type}), p50",
        "ms",
        "Assistant.retrieve on synthetic vectors shaped like the real ones",
        lambda v: v["large.default"]["retrieve_ms_p50"],
        target=("<=", 60.0),
        beside="retrieve_raw_ms_p50_100k",
        row=True,
    ),
    Figure(
        "retrieve_ms_p95_100k",
        "Retrieve, {big} chunks, default index, p95",
        "ms",
        "as the p50",
        lambda v: v["large.default"]["retrieve_ms_p95"],
    ),
    Figure(
        "retrieve_ms_p50_100k_flat",
        "Retrieve, {big} chunks, flat, p50",
        "ms",
        "Assistant.retrieve, exact search",
        lambda v: v["large.flat"]["retrieve_ms_p50"],
        beside="retrieve_raw_ms_p50_100k_flat",
        row=True,
    ),
    Figure(
        "retrieve_ms_p50_100k_hnsw",
        "Retrieve, {big} chunks, HNSW, p50",
        "ms",
        "Assistant.retrieve, --index-type hnsw",
        lambda v: v["large.hnsw"]["retrieve_ms_p50"],
        beside="retrieve_raw_ms_p50_100k_hnsw",
        row=True,
    ),
    Figure(
        "retrieve_raw_ms_p50_100k_flat",
        "Retrieve, {big} chunks, flat, bare encode + search, p50",
        "ms",
        "SentenceTransformer.encode + FAISS search",
        lambda v: v["large.flat"]["raw_ms_p50"],
    ),
    Figure(
        "retrieve_raw_ms_p50_100k_hnsw",
        "Retrieve, {big} chunks, HNSW, bare encode + search, p50",
        "ms",
        "SentenceTransformer.encode + FAISS search",
        lambda v: v["large.hnsw"]["raw_ms_p50"],
    ),
    Figure(
        "retrieve_ms_p50_milvus",
        "Retrieve, seeds, Milvus store (milvus-lite) p50; FAISS store, same run",
        "ms",
        "Assistant.retrieve on the same chunks and vectors in embedded Milvus, interleaved with FAISS",
        _p50_of("milvus.seeds", "milvus"),
        beside="retrieve_ms_p50_faiss",
        row=True,
    ),
    Figure(
        "retrieve_ms_p50_faiss",
        "Retrieve, seeds, FAISS store beside Milvus, p50",
        "ms",
        "Assistant.retrieve, interleaved with the Milvus store",
        _p50_of("milvus.seeds", "faiss"),
    ),
    Figure(
        "milvus_write_s",
        "Milvus write, seeds",
        "s",
        "write_milvus of the seeds index's chunks and vectors",
        lambda v: v["milvus.seeds"].get("write_s"),
    ),
    Figure(
        "retrieve_ms_p50_100k_milvus",
        "Retrieve, {big} chunks, flat, Milvus store (milvus-lite) p50; FAISS store, same run",
        "ms",
        "as for the seeds, on the large index",
        _p50_of("milvus.large", "milvus"),
        beside="retrieve_ms_p50_100k_faiss",
        row=True,
    ),
    Figure(
        "retrieve_ms_p50_100k_faiss",
        "Retrieve, {big} chunks, FAISS store beside Milvus, p50",
        "ms",
        "as for the seeds",
        _p50_of("milvus.large", "faiss"),
    ),
    Figure(
        "milvus_write_s_100k",
        "Milvus write, {big} chunks",
        "s",
        "write_milvus of the large index",
        lambda v: v["milvus.large"].get("write_s"),
    ),
    Figure(
        "faiss_search_ms_p50_100k_flat",
        "FAISS search alone, {big} chunks, flat, p50",
        "ms",
        "IndexFlatIP.search of one query vector",
        lambda v: v["large.flat"]["raw_search_ms_p50"],
        row=True,
    ),
    Figure(
        "faiss_search_ms_p50_100k_hnsw",
        "FAISS search alone, {big} chunks, HNSW, p50",
        "ms",
        "IndexHNSWFlat.search of one query vector",
        lambda v: v["large.hnsw"]["raw_search_ms_p50"],
        row=True,
    ),
    Figure(
        "retrieve_raw_ms_p50_100k",
        "Retrieve, {big} chunks, default index, bare encode + search, p50",
        "ms",
        "SentenceTransformer.encode + FAISS search",
        lambda v: v["large.default"]["raw_ms_p50"],
    ),
    Figure(
        "ann_recall_at_10",
        "HNSW recall@10 vs exact search, {big} chunks",
        "",
        "share of the exact top 10 the HNSW search finds, over random queries",
        lambda v: v["large"]["ann_recall_at_10"],
        row=True,
    ),
    Figure(
        "index_load_s_100k",
        "Index load, {big} chunks, default index",
        "s",
        "load_index: checksums, FAISS, BM25, tables",
        lambda v: v["large.default"]["load_s"],
    ),
    Figure(
        "index_write_s_100k_flat",
        "Index write, {big} chunks, flat",
        "s",
        "write_index of the embedded chunks",
        lambda v: v["large"]["by_type"]["flat"]["write_s"],
    ),
    Figure(
        "index_write_s_100k_hnsw",
        "Index write, {big} chunks, HNSW",
        "s",
        "write_index of the embedded chunks",
        lambda v: v["large"]["by_type"]["hnsw"]["write_s"],
    ),
    # generation: Assistant.stream against llama_cpp.Llama with the same messages and grammar
    Figure(
        "ttft_ms_p50",
        "TTFT, question to first token, p50",
        "ms",
        "Assistant.stream: the question asked to its first answer token, the warm-up question left out",
        lambda v: p50(v["generation"]["ttft_ms"]),
        target=("<=", 4000.0),
        row=True,
    ),
    Figure(
        "ttft_ms_p95",
        "TTFT, question to first token, p95",
        "ms",
        "as the p50",
        lambda v: p95(v["generation"]["ttft_ms"]),
        row=True,
    ),
    Figure(
        "ttft_llm_ms_p50",
        "TTFT, LLM call to first token, p50",
        "ms",
        "the LLM call alone, recorded around the Assistant's LLM",
        lambda v: p50(v["generation"]["ttft_llm_ms"]),
        beside="ttft_raw_ms_p50",
        ratio="ttft_llm_ratio_vs_raw",
        row=True,
    ),
    Figure(
        "ttft_raw_ms_p50",
        "TTFT, bare llama_cpp call to first token, p50",
        "ms",
        "llama_cpp.Llama with the same messages and grammar",
        lambda v: p50(v["generation"]["ttft_raw_ms"]),
    ),
    Figure(
        "ttft_llm_ratio_vs_raw",
        "TTFT, LLM call / bare llama_cpp",
        "",
        "p50 over the questions of the two calls' ratio",
        lambda v: p50(v["generation"]["ttft_ratios"]),
    ),
    Figure(
        "retrieve_in_answer_ms_p50",
        "Retrieve, within an answer, p50",
        "ms",
        "the Answer's own timings",
        lambda v: p50(v["generation"]["retrieve_ms"]),
    ),
    Figure(
        "passages_ms_p50",
        "Passage step, within an answer, p50",
        "ms",
        "the Answer's own timings",
        lambda v: p50(v["generation"]["passages_ms"]),
    ),
    Figure(
        "decode_tok_s",
        "Decode",
        "tokens/s",
        "tokens after the first / their seconds, summed over the questions",
        lambda v: v["generation"]["decode_tok_s"],
        beside="decode_raw_tok_s",
        ratio="decode_ratio_vs_raw",
        row=True,
    ),
    Figure(
        "decode_raw_tok_s",
        "Decode, bare llama_cpp",
        "tokens/s",
        "as ours, llama_cpp.Llama with the same messages and grammar",
        lambda v: v["generation"]["decode_raw_tok_s"],
    ),
    Figure(
        "decode_ratio_vs_raw",
        "Decode, pipeline / bare llama_cpp",
        "",
        "decode rate through the Assistant / the bare library's",
        lambda v: ratio(v["generation"]["decode_tok_s"], v["generation"]["decode_raw_tok_s"]),
        target=(">=", 0.95),
    ),
    Figure(
        "prompt_tok_s",
        "Prompt processing",
        "tokens/s",
        "llama.cpp's own counters: prompt tokens evaluated / their time",
        lambda v: v["generation"]["prompt_tok_s"],
        beside="prompt_raw_tok_s",
        row=True,
    ),
    Figure(
        "prompt_raw_tok_s",
        "Prompt processing, bare llama_cpp",
        "tokens/s",
        "as ours",
        lambda v: v["generation"]["prompt_raw_tok_s"],
    ),
    Figure(
        "prompt_tokens_p50",
        "Prompt tokens, p50",
        "tokens",
        "the LLM calls' prompts",
        lambda v: p50(v["generation"]["prompt_tokens"]),
    ),
    # start-up and memory: fresh processes, interleaved
    Figure(
        "cold_start_s",
        "Cold start `ask` to first token",
        "s",
        "`ask QUESTION` in a new process, start to its first output, p50",
        lambda v: v["cold_start"]["first_s"].get("ask"),
        beside="cold_start_bare_llm_s",
        ratio="cold_start_ratio_vs_bare_llm",
        row=True,
    ),
    Figure(
        "cold_start_bare_llm_s",
        "Cold start, bare llama_cpp load to first token",
        "s",
        "a new process that loads the same GGUF with llama_cpp.Llama and generates from the same messages",
        lambda v: v["cold_start"]["first_s"].get("bare_llm"),
    ),
    Figure(
        "cold_start_ratio_vs_bare_llm",
        "Cold start, `ask` / bare llama_cpp",
        "",
        "the two p50s' ratio",
        lambda v: ratio(v["cold_start"]["first_s"].get("ask"), v["cold_start"]["first_s"].get("bare_llm")),
        target=("<=", 1.5),
    ),
    Figure(
        "cold_start_retrieve_only_s",
        "Cold start `ask --retrieve-only` to output",
        "s",
        "`ask --retrieve-only QUESTION` in a new process, start to its first output, p50",
        lambda v: v["cold_start"]["first_s"].get("retrieve_only"),
        target=("<=", 1.5),
        row=True,
    ),
    Figure(
        "peak_rss_mb",
        "Peak RSS `ask`",
        "MB",
        "the `ask` process's own high-water mark (VmHWM), the highest of its runs",
        lambda v: v["cold_start"]["peak_rss_mb"].get("ask"),
        target=("<=", 3000.0),  # issue 12's budget for the default LLM (1.5B)
        beside="peak_rss_mb_bare_llm",
        row=True,
    ),
    Figure(
        "peak_rss_mb_bare_llm",
        "Peak RSS, bare llama_cpp cold start",
        "MB",
        "as for `ask`",
        lambda v: v["cold_start"]["peak_rss_mb"].get("bare_llm"),
    ),
    Figure(
        "peak_rss_mb_retrieve_only",
        "Peak RSS `ask --retrieve-only`",
        "MB",
        "as for `ask`",
        lambda v: v["cold_start"]["peak_rss_mb"].get("retrieve_only"),
        row=True,
    ),
    Figure(
        "peak_rss_mb_ui",
        "Peak RSS `rag ui` after one question",
        "MB",
        "`rag ui` on a free port, one question through gradio_client, then its VmHWM",
        lambda v: v["ui"].get("peak_rss_mb"),
        target=("<=", 2560.0),
        row=True,
    ),
    Figure(
        "ui_start_s", "`rag ui` start", "s", "process start to its address printed", lambda v: v["ui"].get("start_s")
    ),
    Figure(
        "ui_answer_s",
        "`rag ui` answer",
        "s",
        "one question through gradio_client's /ask",
        lambda v: v["ui"].get("answer_s"),
    ),
    # ui_memory: one `rag ui` answering many questions, two uploads among them (bench_ui_memory)
    Figure(
        "ui_rss_mb_late",
        "Peak RSS `rag ui` after many questions and two uploads",
        "MB",
        "its VmHWM after the last question; beside it, after the first tenth (the first upload among them)",
        lambda v: v["ui_memory"]["late"],
        beside="ui_rss_mb_early",
        ratio="ui_memory_growth",
        row=True,
    ),
    Figure(
        "ui_rss_mb_early",
        "Peak RSS `rag ui` after a tenth of the questions",
        "MB",
        "its VmHWM after the first tenth of the questions and the first upload",
        lambda v: v["ui_memory"]["early"],
    ),
    Figure(
        "ui_memory_growth",
        "`rag ui` peak RSS, after all / after a tenth",
        "",
        "the two figures' ratio: what a session keeps per question",
        lambda v: ratio(v["ui_memory"]["late"], v["ui_memory"]["early"]),
        target=("<=", 1.10),
    ),
    # embedders: e5-small (the default) and EmbeddingGemma, whole `rag index` and `ask` processes
    # and question embedding, each beside ONNX Runtime's session.run on the same inputs
    Figure(
        "embedder_index_chunks_per_s_e5",
        "Indexing, seeds, `rag index --rebuild` process, e5-small",
        "chunks/s",
        "chunks of the documents / p50 of the whole process's wall time (start, models, build, write)",
        lambda v: v["embedders"]["e5-small"]["chunks_per_s"],
        beside="embedder_index_raw_chunks_per_s_e5",
        row=True,
    ),
    Figure(
        "embedder_index_raw_chunks_per_s_e5",
        "Indexing, seeds, e5-small, bare session.run",
        "chunks/s",
        BARE_RUN + " of the same chunks' batches (tokenized and padded beforehand)",
        lambda v: v["embedders"]["e5-small"]["raw_chunks_per_s"],
    ),
    Figure(
        "embedder_index_chunks_per_s_gemma",
        "Indexing, seeds, `rag index --rebuild` process, EmbeddingGemma",
        "chunks/s",
        "as for e5-small, with --embedder gemma-300m",
        lambda v: v["embedders"]["gemma-300m"]["chunks_per_s"],
        beside="embedder_index_raw_chunks_per_s_gemma",
        row=True,
    ),
    Figure(
        "embedder_index_raw_chunks_per_s_gemma",
        "Indexing, seeds, EmbeddingGemma, bare session.run",
        "chunks/s",
        "as for e5-small",
        lambda v: v["embedders"]["gemma-300m"]["raw_chunks_per_s"],
    ),
    Figure(
        "embedder_index_time_ratio",
        "Indexing, seeds, `rag index` time, EmbeddingGemma / e5-small",
        "",
        "p50 over the runs of the two processes' wall-time ratio (they ran in turn)",
        lambda v: v["embedders"]["index_time_ratio"],
        target=("<=", 2.0),
        row=True,
    ),
    Figure(
        "embedder_index_peak_rss_mb_gemma",
        "Peak RSS `rag index --rebuild`, seeds, EmbeddingGemma; e5-small, same run",
        "MB",
        "the process's own high-water mark (VmHWM), the highest of its runs",
        lambda v: v["embedders"]["gemma-300m"]["index_peak_rss_mb"],
        beside="embedder_index_peak_rss_mb_e5",
        row=True,
    ),
    Figure(
        "embedder_index_peak_rss_mb_e5",
        "Peak RSS `rag index --rebuild`, seeds, e5-small",
        "MB",
        "as for EmbeddingGemma",
        lambda v: v["embedders"]["e5-small"]["index_peak_rss_mb"],
    ),
    Figure(
        "embedder_question_ms_p50_e5",
        "Question embedding, e5-small, p50",
        "ms",
        "encode_queries of one question as `ask` calls it (session warm), the languages taking turns",
        lambda v: v["embedders"]["e5-small"]["question_ms_p50"],
        beside="embedder_question_raw_ms_p50_e5",
        row=True,
    ),
    Figure(
        "embedder_question_raw_ms_p50_e5",
        "Question embedding, e5-small, bare session.run, p50",
        "ms",
        BARE_RUN + " on the same question's token ids, in turn with ours",
        lambda v: v["embedders"]["e5-small"]["raw_question_ms_p50"],
    ),
    Figure(
        "embedder_question_ms_p50_gemma",
        "Question embedding, EmbeddingGemma, p50",
        "ms",
        "as for e5-small",
        lambda v: v["embedders"]["gemma-300m"]["question_ms_p50"],
        target=("<=", 30.0),
        beside="embedder_question_raw_ms_p50_gemma",
        row=True,
    ),
    Figure(
        "embedder_question_raw_ms_p50_gemma",
        "Question embedding, EmbeddingGemma, bare session.run, p50",
        "ms",
        "as for e5-small",
        lambda v: v["embedders"]["gemma-300m"]["raw_question_ms_p50"],
    ),
    Figure(
        "embedder_ask_peak_rss_mb_gemma",
        "Peak RSS `ask --embedder gemma-300m`; `ask` with e5-small, same run",
        "MB",
        "`ask QUESTION` with the LLM in a new process, its VmHWM",
        lambda v: v["embedders"]["gemma-300m"]["ask_peak_rss_mb"],
        target=("<=", 2560.0),  # 2.5 GB with the default LLM (1.5B)
        beside="embedder_ask_peak_rss_mb_e5",
        row=True,
    ),
    Figure(
        "embedder_ask_peak_rss_mb_e5",
        "Peak RSS `ask` with e5-small, embedders section",
        "MB",
        "as for EmbeddingGemma, the same question",
        lambda v: v["embedders"]["e5-small"]["ask_peak_rss_mb"],
    ),
)
BY_KEY: dict[str, Figure] = {figure.key: figure for figure in FIGURES}


def figure_values(details: dict, index_type: str) -> dict:
    """Every declared figure's value (None when its section did not run), by key."""
    measured = views(details, index_type)
    out = {}
    for figure in FIGURES:
        try:
            out[figure.key] = figure.value(measured)
        except KeyError:  # its section was skipped
            out[figure.key] = None
    return out


def targets(values: Mapping) -> dict:
    """Each target with the figure's value and whether it holds (None: not measured)."""
    return {
        f.key: {"value": values.get(f.key), "target": f.target_text(), "holds": f.holds(values.get(f.key))}
        for f in FIGURES
        if f.target is not None
    }
