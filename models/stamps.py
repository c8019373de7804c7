"""Stat-only checks that something verified earlier is unchanged, cheap enough for every
question: the sizes and mtimes of a folder's files (models/provision.py's stamps), and
whether a folder's ONNX export (made by models/onnx_export.py) was made from the files the
folder holds now. `onnx/export.json` records the files an export was made from and its own."""

from __future__ import annotations

import json
from pathlib import Path

EXPORT_DIR = "onnx"
MODEL_FILE = "model.onnx"
RECORD_FILE = "export.json"
# Bump when the exported graph or its record changes, so older exports are redone.
EXPORTER_VERSION = 1


def folder_files(folder: Path, skip: str | None = None) -> dict[str, list[int]]:
    """Each file under `folder` (relative name) with its size and mtime, leaving out `skip/`."""
    files = {}
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if path.is_file() and not (skip and name.startswith(skip + "/")):
            info = path.stat()
            files[name] = [info.st_size, info.st_mtime_ns]
    return files


def source_files(folder: Path) -> dict[str, list[int]]:
    """The files of a sentence-transformers folder itself (its export left out)."""
    return folder_files(folder, skip=EXPORT_DIR)


def current_export(folder: Path) -> Path | None:
    """The exported graph in use of `folder` (the record's `variant` may name a quantised one)
    if an export of this version was made from the files the folder holds now and its own
    files are unchanged since; else None."""
    try:
        record = json.loads((folder / EXPORT_DIR / RECORD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (not isinstance(record, dict) or record.get("exporter_version") != EXPORTER_VERSION
            or record.get("source") != source_files(folder)
            or record.get("export") != folder_files(folder / EXPORT_DIR) | {RECORD_FILE: None}):
        return None
    graph = (record.get("variant") or {}).get("graph", MODEL_FILE)
    return folder / EXPORT_DIR / graph if graph in record["export"] else None
