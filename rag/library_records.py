"""What the library remembers about the documents folder, kept in the index folder.

Two lists, in one small JSON file (`library.json`) beside the index generations:
- `excluded`: documents taken out of the index while their files stay where they are; every
  build leaves them out (`rag index --include NAME`, or the chat's Undo, brings one back).
  The documents folder is the user's: removing a document from the library never deletes it.
- `uploaded`: files the chat itself wrote into the documents folder, with the sha256 of what
  it wrote. Only such a file, unchanged since, may be deleted (after a confirmation naming it).

The file is written whole to a temporary name and renamed into place, so a reader sees the
old list or the new one. It is not an index file: builds never delete it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import RagError

RECORDS = "library.json"


@dataclass(frozen=True)
class LibraryRecords:
    excluded: tuple[str, ...] = ()  # oldest first: the last one is the last removal
    uploaded: dict[str, str] = field(default_factory=dict)  # name -> sha256 of the bytes the chat wrote

    def excluding(self, name: str) -> LibraryRecords:
        return replace(self, excluded=(*(n for n in self.excluded if n != name), name))

    def including(self, names: set[str] | frozenset[str]) -> LibraryRecords:
        return replace(self, excluded=tuple(n for n in self.excluded if n not in names))

    def with_upload(self, name: str, sha256: str) -> LibraryRecords:
        return replace(self, uploaded={**self.uploaded, name: sha256})

    def without_upload(self, name: str) -> LibraryRecords:
        return replace(self, uploaded={n: s for n, s in self.uploaded.items() if n != name})


def read_records(index_dir: Path) -> LibraryRecords:
    """The records of this index folder (empty if it has none); RagError if the file is damaged."""
    path = Path(index_dir) / RECORDS
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return LibraryRecords()
    except NotADirectoryError:  # the index folder is a file: the build says so in its own words
        return LibraryRecords()
    except (OSError, ValueError) as error:
        raise RagError(f"{path} is unreadable ({error}); it lists the documents removed from the index") from None
    excluded, uploaded = (data.get("excluded"), data.get("uploaded")) if isinstance(data, dict) else (None, None)
    if not (
        isinstance(excluded, list)
        and all(isinstance(n, str) for n in excluded)
        and isinstance(uploaded, dict)
        and all(isinstance(n, str) and isinstance(s, str) for n, s in uploaded.items())
    ):
        raise RagError(f"{path} is not the library's record of removed and uploaded documents; fix or remove it")
    return LibraryRecords(tuple(excluded), dict(uploaded))


def write_records(index_dir: Path, records: LibraryRecords) -> None:
    folder = Path(index_dir)
    data = {"excluded": list(records.excluded), "uploaded": records.uploaded}
    draft = folder / f".{RECORDS}.tmp-{os.getpid()}-{os.urandom(4).hex()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(draft, "x", encoding="utf-8") as handle:
            json.dump(data, handle, ensure_ascii=False, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(draft, folder / RECORDS)
    except OSError as error:
        draft.unlink(missing_ok=True)
        raise RagError(f"cannot write {folder / RECORDS} ({error.strerror or error})") from None
