"""One settings object: defaults, overridden by environment variables, overridden by CLI flags."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import RagError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = PROJECT_ROOT / "models"
DEFAULT_LLM_FILE = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
DEFAULT_EMBEDDER_DIR = "multilingual-e5-small"


def physical_cores() -> int:
    """Threads for llama.cpp and torch: hyper-threads only slow matrix kernels down."""
    import psutil

    return max(1, psutil.cpu_count(logical=False) or os.cpu_count() or 1)


@dataclass(frozen=True)
class Settings:
    docs_dir: Path = PROJECT_ROOT / "seeds"
    index_dir: Path = PROJECT_ROOT / "index"
    models_dir: Path = MODELS_DIR
    # None means "the default model provisioned into models_dir".
    llm: Path | None = None
    llm_url: str | None = None
    embedder: str | None = None
    k: int = 4  # chunks retrieved
    passages: int = 3  # paragraphs of those chunks the LLM reads
    passage_tokens: int = 96  # longest passage, in embedder tokens
    # Below this cosine between the question and the best passage, refuse without asking
    # the LLM (calibrated on eval/gold.jsonl; see README, evaluation).
    min_similarity: float = 0.80
    chunk_tokens: int = 128
    chunk_overlap: int = 16
    retrieval: str = "hybrid"
    index_type: str = "flat"  # "hnsw" for large corpora: approximate, sub-linear search
    max_tokens: int = 80
    temperature: float = 0.0
    context_tokens: int = 2048
    threads: int = field(default_factory=physical_cores)

    @property
    def llm_path(self) -> Path:
        return self.llm or self.models_dir / DEFAULT_LLM_FILE

    @property
    def embedder_name(self) -> str:
        return self.embedder or str(self.models_dir / DEFAULT_EMBEDDER_DIR)

    @property
    def uses_default_llm(self) -> bool:
        return self.llm is None and self.llm_url is None

    @property
    def uses_default_embedder(self) -> bool:
        return self.embedder is None

    def replace(self, **changes: object) -> "Settings":
        """A copy with the given fields changed; None values are ignored (an unset CLI flag)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


# Environment variable -> settings field. Values are converted with the field's type.
ENVIRONMENT = {
    "RAG_DOCS": "docs_dir",
    "RAG_INDEX": "index_dir",
    "RAG_MODELS": "models_dir",
    "RAG_LLM": "llm",
    "RAG_LLM_URL": "llm_url",
    "RAG_EMBEDDER": "embedder",
    "RAG_K": "k",
    "RAG_RETRIEVAL": "retrieval",
    "RAG_INDEX_TYPE": "index_type",
    "RAG_MAX_TOKENS": "max_tokens",
    "RAG_TEMPERATURE": "temperature",
    "RAG_THREADS": "threads",
}

_CONVERTERS = {"docs_dir": Path, "index_dir": Path, "models_dir": Path, "llm": Path,
               "k": int, "max_tokens": int, "threads": int, "temperature": float}


def load_settings(environ: dict[str, str] | None = None, **overrides: object) -> Settings:
    """Settings from defaults <- environment <- overrides (CLI flags; None means unset)."""
    environ = os.environ if environ is None else environ
    from_env: dict[str, object] = {}
    for variable, name in ENVIRONMENT.items():
        raw = environ.get(variable, "").strip()
        if raw:
            try:
                from_env[name] = _CONVERTERS.get(name, str)(raw)
            except ValueError:
                raise RagError(f"{variable}={raw!r} is not a valid {name}") from None
    settings = Settings().replace(**from_env).replace(**overrides)
    validate(settings)
    return settings


def validate(settings: Settings) -> None:
    if settings.k < 1 or settings.k > 50:
        raise RagError(f"k must be between 1 and 50, not {settings.k}")
    if settings.retrieval not in ("dense", "keyword", "hybrid"):
        raise RagError(f"retrieval must be dense, keyword or hybrid, not {settings.retrieval!r}")
    if settings.index_type not in ("flat", "hnsw"):
        raise RagError(f"index type must be flat or hnsw, not {settings.index_type!r}")
    if settings.max_tokens < 1:
        raise RagError(f"max tokens must be positive, not {settings.max_tokens}")
    if not 0.0 <= settings.temperature <= 2.0:
        raise RagError(f"temperature must be between 0 and 2, not {settings.temperature}")
    if settings.threads < 1:
        raise RagError(f"threads must be positive, not {settings.threads}")


def is_local_host(host: str) -> bool:
    """True for `localhost` and loopback addresses (IPv6 with or without brackets): where the
    chat may listen without sign-in, and where a served LLM is reached without a proxy."""
    import ipaddress

    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
