"""One settings object: defaults, overridden by environment variables, overridden by CLI flags."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from models import catalogue
from models.catalogue import Model

from . import backends
from .errors import RagError
from .scope import check_languages, language_codes

if TYPE_CHECKING:
    import argparse

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = PROJECT_ROOT / "models"
DEFAULT_LLM_FILE = catalogue.default("llm").target
DEFAULT_EMBEDDER_DIR = catalogue.default("embedder").target


def physical_cores() -> int:
    """Threads for llama.cpp and torch: hyper-threads only slow matrix kernels down."""
    import psutil

    return max(1, psutil.cpu_count(logical=False) or os.cpu_count() or 1)


@dataclass(frozen=True)
class Settings:
    docs_dir: Path = PROJECT_ROOT / "seeds"
    index_dir: Path = PROJECT_ROOT / "index"
    models_dir: Path = MODELS_DIR
    # None means the catalogue's default (models/catalogue.py); a catalogue name means that
    # model; both are provisioned into models_dir. Anything else is a path (or hub name).
    llm: Path | None = None
    llm_url: str | None = None
    embedder: str | None = None
    k: int = 4  # chunks retrieved
    # Two paragraphs of up to 144 tokens rather than three of 96 (the same prompt length): a
    # long paragraph keeps its evidence, and the model strays less (docs/evaluation-public.md).
    passages: int = 2  # paragraphs of those chunks the LLM reads
    passage_tokens: int = 144  # longest passage, in embedder tokens
    # Similarity thresholds are written on multilingual-e5-small's cosine scale and carried
    # to other embedders by rag/scale.py. Below min_similarity between the question and the
    # best passage, refuse without asking the LLM (chosen on the public dev split, see
    # docs/evaluation.md: questions whose evidence is in another language score lower).
    min_similarity: float = 0.78
    # Below this probability (the model's own, that some passage answers) refuse at once, before
    # an answer is copied: the highest floor that changes no decision of min_confidence on the
    # public dev split (docs/evaluation.md).
    min_answerable: float = 0.5
    # A copy is shown when that probability, moved on the log-odds scale by gain_weight per nat
    # of how much likelier the question makes the copied words than questions that ask nothing
    # (rag.assistant.question_gain), is at least min_confidence. Both chosen together on the
    # public dev split: the most right answers and right refusals net of wrong answers shown,
    # refusing at most a fifth of answerable questions (docs/evaluation.md).
    gain_weight: float = 0.15
    min_confidence: float = 0.909
    # The weight of each place a passage stands after the first (the retriever's order) in the
    # choice of the passage an answer is copied from, times the model's own probability of it
    # (chosen on the public dev split: the small model passes over the first passage too often).
    passage_prior: float = 0.35
    # The next passage's copy replaces the first one's when its weight times its copy's own
    # probability to this power is the greater (0: the first usable copy stands; chosen on the
    # public dev split).
    copy_weight: float = 2.0
    # Below this probability of the copied answer (the model's own, per token) withhold it.
    min_copied: float = 0.0
    # Below this probability of the copy's translation (the model's own, per token) the copy is
    # shown alone: the small model's translations it is unsure of are mostly wrong (chosen on the
    # public dev split, docs/evaluation.md).
    min_translated: float = 0.5
    # "auto": a question in a language few of the searched documents are in is also searched as
    # the LLM translates it into theirs (more answers across languages, one more generation
    # before the search); "off": the question alone, sooner.
    search_translation: str = "auto"
    chunk_tokens: int = 128
    chunk_overlap: int = 16
    retrieval: str = "hybrid"
    index_type: str = "flat"  # "hnsw" for large corpora: approximate, sub-linear search
    store: str = "faiss"  # "milvus": the index in a Milvus collection instead of index_dir
    # A local `*.db` path (milvus-lite's embedded file) or `http(s)://host:19530` (a server or cluster).
    milvus_uri: str | None = None
    milvus_token: str | None = None  # "user:password" or an API token, for a secured cluster
    max_tokens: int = 96
    temperature: float = 0.0
    context_tokens: int = 2048
    threads: int = field(default_factory=physical_cores)
    # The key a client of the OpenAI-compatible API must send (`Authorization: Bearer KEY`);
    # without one, the API is served to this machine only.
    api_key: str | None = None
    chats: Path | None = None  # the conversations file; None: beside the index folder
    # The scope of `ask`'s questions (rag/scope.py): patterns of files or folders, and
    # document languages; empty means every document.
    only: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()

    @property
    def chats_path(self) -> Path:
        """Where conversations are kept (rag/history.py says why beside the index, not in it)."""
        return (
            self.chats if self.chats is not None else self.index_dir.with_name(self.index_dir.name + ".chats.sqlite3")
        )

    @property
    def llm_model(self) -> Model | None:
        """The catalogue LLM in use (provisioned on first use), or None for a path or a server."""
        if self.llm_url:
            return None
        return catalogue.default("llm") if self.llm is None else catalogue.find(str(self.llm), "llm")

    @property
    def embedder_model(self) -> Model | None:
        return catalogue.default("embedder") if self.embedder is None else catalogue.find(self.embedder, "embedder")

    @property
    def llm_path(self) -> Path:
        model = catalogue.default("llm") if self.llm is None else catalogue.find(str(self.llm), "llm")
        return self.models_dir / model.target if model else self.llm

    @property
    def embedder_name(self) -> str:
        model = self.embedder_model
        return str(self.models_dir / model.target) if model else self.embedder

    @property
    def index_location(self) -> str:
        """Where the index lives, for messages (never with the Milvus token)."""
        return backends.store(self.store).location(self)

    def replace(self, **changes: object) -> Settings:
        """A copy with the given fields changed; None values are ignored (an unset CLI flag)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


RETRIEVAL_MODES = ("dense", "keyword", "hybrid")
INDEX_TYPES = ("flat", "hnsw")
STORES = tuple(backends.STORES)


SEARCH_TRANSLATION = ("auto", "off")


@dataclass(frozen=True)
class Option:
    """One setting that the environment (and, with a flag, the command line) can override."""

    field: str  # the Settings field
    env: str | None  # None: a flag only
    flag: str | None = None  # None: environment only
    convert: Callable[[str], object] = str
    choices: tuple[str, ...] | None = None
    help: str = ""
    generation: bool = False  # a flag only commands that generate answers offer
    serving: bool = False  # a flag only commands that serve (`rag ui`, `rag serve`) offer
    secret: bool = False  # never echoed back (reports list the flags given)
    scope: bool = False  # a flag of `ask` only: which documents a question searches
    repeat: bool = False  # may be given several times; `convert` gives a tuple, the values add up

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_") if self.flag else self.field


# The one declaration of the settings' environment variables and flags, used by every command.
OPTIONS = (
    Option("docs_dir", "RAG_DOCS", "--docs", Path, help="documents folder, default seeds/"),
    Option("index_dir", "RAG_INDEX", "--index", Path, help="index folder, default index/"),
    Option("models_dir", "RAG_MODELS", convert=Path),
    Option(
        "embedder",
        "RAG_EMBEDDER",
        "--embedder",
        help="a catalogue name (e5-small, gemma-300m; `rag models` lists them) or a sentence-transformers folder",
    ),
    Option("llm", "RAG_LLM", "--llm", Path, help="a catalogue name (qwen-1.5b, qwen-0.5b) or a GGUF file"),
    Option("llm_url", "RAG_LLM_URL", "--llm-url", help="OpenAI-compatible server URL instead of a local GGUF"),
    Option("k", "RAG_K", "--k", int, help="passages retrieved per question"),
    Option("retrieval", "RAG_RETRIEVAL", "--retrieval", choices=RETRIEVAL_MODES, help="retrieval mode"),
    Option(
        "index_type",
        "RAG_INDEX_TYPE",
        "--index-type",
        choices=INDEX_TYPES,
        help="FAISS index: exact flat (the default) or approximate HNSW for large corpora",
    ),
    Option(
        "store",
        "RAG_STORE",
        "--store",
        choices=STORES,
        help="where the index lives: the FAISS folder --index (the default) or Milvus",
    ),
    Option(
        "milvus_uri",
        "RAG_MILVUS_URI",
        "--milvus-uri",
        help="Milvus: a local .db file (embedded milvus-lite) or http://host:19530 (a server or cluster)",
    ),
    Option(
        "milvus_token",
        "RAG_MILVUS_TOKEN",
        "--milvus-token",
        secret=True,
        help="Milvus: user:password or an API token; the environment keeps it out of the process list",
    ),
    Option("max_tokens", "RAG_MAX_TOKENS", "--max-tokens", int, help="longest answer, in tokens", generation=True),
    Option(
        "temperature",
        "RAG_TEMPERATURE",
        "--temperature",
        float,
        help="sampling temperature, default 0: deterministic",
        generation=True,
    ),
    Option(
        "min_answerable",
        "RAG_MIN_ANSWERABLE",
        "--min-answerable",
        float,
        help="refuse below this probability (the LLM's) that a passage answers",
        generation=True,
    ),
    Option(
        "min_confidence",
        "RAG_MIN_CONFIDENCE",
        "--min-confidence",
        float,
        help="refuse a copied answer below this confidence: the LLM's probability that a passage answers, "
        "raised by how much the question makes the copied words likely (--gain-weight)",
        generation=True,
    ),
    Option(
        "gain_weight",
        "RAG_GAIN_WEIGHT",
        "--gain-weight",
        float,
        help="how much the question's gain on the copied words counts in --min-confidence (0: none)",
        generation=True,
    ),
    Option(
        "min_copied",
        "RAG_MIN_COPIED",
        "--min-copied",
        float,
        help="withhold an answer whose copied words the LLM gives less than this probability per token",
        generation=True,
    ),
    Option(
        "min_translated",
        "RAG_MIN_TRANSLATED",
        "--min-translated",
        float,
        help="show the copied answer without its translation when the LLM gives the translation less than "
        "this probability per token",
        generation=True,
    ),
    Option(
        "search_translation",
        "RAG_SEARCH_TRANSLATION",
        "--search-translation",
        choices=SEARCH_TRANSLATION,
        help="auto: also search a question in the documents' language when few are in its own (LLM translation); "
        "off: the question alone, sooner",
        generation=True,
    ),
    Option(
        "copy_weight",
        "RAG_COPY_WEIGHT",
        "--copy-weight",
        float,
        help="weight of the LLM's own probability of its copy in choosing between its first two passages (0: none)",
        generation=True,
    ),
    Option(
        "passage_prior",
        "RAG_PASSAGE_PRIOR",
        "--passage-prior",
        float,
        help="weight per place after the first of the retriever's order in choosing the passage (1: the LLM's choice)",
        generation=True,
    ),
    Option(
        "min_similarity",
        "RAG_MIN_SIMILARITY",
        "--min-similarity",
        float,
        help="refuse without asking the LLM below this question-passage similarity (e5-small's scale)",
        generation=True,
    ),
    Option("threads", "RAG_THREADS", convert=int),
    Option(
        "api_key",
        "RAG_API_KEY",
        "--api-key",
        secret=True,
        serving=True,
        help="the key clients of the OpenAI-compatible API must send; needed off this machine "
        "(the environment keeps it out of the process list)",
    ),
    Option(
        "chats",
        "RAG_CHATS",
        "--chats",
        Path,
        help="conversations file (SQLite), default beside the index folder: INDEX.chats.sqlite3",
    ),
    Option(
        "only",
        None,
        "--only",
        lambda pattern: (pattern,),
        help="search only these documents: a file name, a path or folder in the documents folder, "
        "or a glob such as '*.pdf' (repeatable)",
        scope=True,
        repeat=True,
    ),
    Option(
        "languages",
        None,
        "--lang",
        language_codes,
        help="search only documents in these languages: ko, zh, id, en, ja or their names (repeatable, or ko,zh)",
        scope=True,
        repeat=True,
    ),
)


def add_settings_flags(parser: argparse.ArgumentParser, generation: bool = False) -> None:
    """Add the settings flags every command shares, or with `generation` those of answer generation."""
    llm_choice = parser if generation else parser.add_mutually_exclusive_group()
    for option in OPTIONS:
        if option.flag and option.generation == generation and not option.serving and not option.scope:
            (llm_choice if option.field == "llm" else parser).add_argument(
                option.flag, type=option.convert, choices=option.choices, help=f"{option.help} (env {option.env})"
            )
    if not generation:  # an alias, so it travels like --llm (e.g. to the bench's child processes)
        llm_choice.add_argument(
            "--fast",
            dest="llm",
            action="store_const",
            const=Path(catalogue.FAST_LLM),
            help=f"the small, faster LLM: --llm {catalogue.FAST_LLM}",
        )


def add_serving_flags(parser: argparse.ArgumentParser) -> None:
    """Add the settings flags of commands that serve (the chat, the API)."""
    for option in OPTIONS:
        if option.flag and option.serving:
            parser.add_argument(option.flag, type=option.convert, help=f"{option.help} (env {option.env})")


def add_scope_flags(parser: argparse.ArgumentParser) -> None:
    """Add the flags choosing which documents a question searches (`ask`)."""
    for option in OPTIONS:
        if option.flag and option.scope:
            parser.add_argument(
                option.flag, type=option.convert, action="extend" if option.repeat else "store", help=option.help
            )


def settings_options() -> argparse.ArgumentParser:
    """A parent parser with the settings flags every command shares."""
    import argparse

    parser = argparse.ArgumentParser(add_help=False)
    add_settings_flags(parser)
    return parser


def given_flags(args: argparse.Namespace) -> list[tuple[str, object]]:
    """The settings flags given on the command line, as (flag, value), in declaration order."""
    return [
        (option.flag, "***" if option.secret else getattr(args, option.dest))
        for option in OPTIONS
        if option.flag and getattr(args, option.dest, None) is not None
    ]


def settings_from_args(args: argparse.Namespace, environ: dict[str, str] | None = None) -> Settings:
    """Settings from defaults <- environment <- the flags in `args` (absent or None: unset)."""
    values = {option.field: getattr(args, option.dest, None) for option in OPTIONS if option.flag}
    return load_settings(environ, **{key: tuple(v) if isinstance(v, list) else v for key, v in values.items()})


def load_settings(environ: dict[str, str] | None = None, **overrides: object) -> Settings:
    """Settings from defaults <- environment <- overrides (CLI flags; None means unset)."""
    environ = os.environ if environ is None else environ
    from_env: dict[str, object] = {}
    for option in OPTIONS:
        raw = environ.get(option.env, "").strip() if option.env else ""
        if raw:
            try:
                from_env[option.field] = option.convert(raw)
            except ValueError:
                raise RagError(f"{option.env}={raw!r} is not a valid {option.field}") from None
    settings = Settings().replace(**from_env).replace(**overrides)
    validate(settings)
    return settings


def validate(settings: Settings) -> None:
    if settings.k < 1 or settings.k > 50:
        raise RagError(f"k must be between 1 and 50, not {settings.k}")
    if settings.retrieval not in RETRIEVAL_MODES:
        raise RagError(f"retrieval must be dense, keyword or hybrid, not {settings.retrieval!r}")
    if settings.search_translation not in SEARCH_TRANSLATION:
        raise RagError(f"search translation must be auto or off, not {settings.search_translation!r}")
    if settings.index_type not in INDEX_TYPES:
        raise RagError(f"index type must be flat or hnsw, not {settings.index_type!r}")
    if settings.store not in backends.STORES:
        raise RagError(f"store must be {' or '.join(backends.STORES)}, not {settings.store!r}")
    if settings.store == "milvus" and not settings.milvus_uri:
        raise RagError("--store milvus needs --milvus-uri (a local file like milvus.db, or http://host:19530)")
    if settings.max_tokens < 1:
        raise RagError(f"max tokens must be positive, not {settings.max_tokens}")
    if not 0.0 <= settings.temperature <= 2.0:
        raise RagError(f"temperature must be between 0 and 2, not {settings.temperature}")
    if not 0.0 <= settings.min_answerable <= 1.0:
        raise RagError(f"min answerable must be between 0 and 1, not {settings.min_answerable}")
    if not 0.0 <= settings.min_confidence <= 1.0:
        raise RagError(f"min confidence must be between 0 and 1, not {settings.min_confidence}")
    if not 0.0 <= settings.gain_weight <= 10.0:
        raise RagError(f"gain weight must be between 0 and 10, not {settings.gain_weight}")
    if not 0.0 <= settings.min_copied <= 1.0:
        raise RagError(f"min copied must be between 0 and 1, not {settings.min_copied}")
    if not 0.0 <= settings.min_translated <= 1.0:
        raise RagError(f"min translated must be between 0 and 1, not {settings.min_translated}")
    if settings.copy_weight < 0.0:
        raise RagError(f"copy weight must not be negative, not {settings.copy_weight}")
    if not 0.0 < settings.passage_prior <= 1.0:
        raise RagError(f"passage prior must be above 0 and at most 1, not {settings.passage_prior}")
    if not -1.0 <= settings.min_similarity <= 1.0:
        raise RagError(f"min similarity must be between -1 and 1, not {settings.min_similarity}")
    if settings.threads < 1:
        raise RagError(f"threads must be positive, not {settings.threads}")
    if settings.api_key is not None and (len(settings.api_key) < 8 or not settings.api_key.isprintable()):
        raise RagError("the API key must be at least 8 printable characters")
    check_languages(settings.languages)


def is_local_host(host: str) -> bool:
    """True for `localhost` and loopback addresses (IPv6 with or without brackets, and IPv4 in
    the short forms the system resolver also accepts, such as 127.1): where the chat may
    listen without sign-in, and where a served LLM is reached without a proxy."""
    import ipaddress
    import socket

    host = host.strip()
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    if not host or any(c.isspace() for c in host):  # inet_aton ignores what follows a space
        return False
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host)).is_loopback
    except OSError:
        return False
