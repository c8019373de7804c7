"""Conversations that last: every question and answer saved as it happens, in one SQLite file.

One row per conversation (owner, title, times) and one per turn: the question, the question
as retrieval saw it (a follow-up made standalone), the answer, its citations (file, page,
paragraph, the quoted sentence and its paragraph), and the sha256 each cited document had
when the answer was written (the index manifest's, i.e. of the file's bytes). Reopened later,
a citation whose document has changed or gone since is marked so, rather than vouching for
text the folder no longer holds.

A turn is written when the question is asked (status "pending") and completed when the
answer is settled ("answered"), stopped or failed: a server killed mid-answer loses nothing
already shown, and leaves the question, marked interrupted. WAL journalling lets the chat
server and an `ask --chat` in a shell write the same file at once, and readers never wait.

The file lives beside the index folder (Settings.chats_path), not in it: the folder is
rebuilt and swapped whole and may be deleted to start again, while conversations are the
user's to keep; one index, one history, side by side.

Owners: "" is the local user (no sign-in, and the command line); with the chat's sign-in,
the signed-in name. Every call that touches a conversation names its owner, and sees only
that owner's conversations.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .errors import RagError

LOCAL = ""  # the owner when nobody signs in
TITLE_CHARS = 80
PENDING, ANSWERED, STOPPED, FAILED = "pending", "answered", "stopped", "failed"
CHANGED = "the document changed since; ask again"
REMOVED = "the document was removed since; ask again"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id INTEGER PRIMARY KEY,
    owner TEXT NOT NULL,
    title TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_by_owner ON conversations (owner, updated);
CREATE TABLE IF NOT EXISTS turns (
    conversation INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    n INTEGER NOT NULL,
    asked REAL NOT NULL,
    question TEXT NOT NULL,
    standalone TEXT NOT NULL,
    status TEXT NOT NULL,
    answer TEXT,
    citations TEXT NOT NULL DEFAULT '[]',
    hashes TEXT NOT NULL DEFAULT '{}',
    details TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (conversation, n)
);
"""
_VERSION = 1


@dataclass(frozen=True)
class Conversation:
    id: int
    owner: str
    title: str
    created: float
    updated: float
    turns: int

    @property
    def label(self) -> str:
        """The title with its date, as the sidebar and `rag chats` list it."""
        return f"{self.title} · {time.strftime('%Y-%m-%d %H:%M', time.localtime(self.updated))}"


@dataclass(frozen=True)
class Turn:
    n: int  # from 1 within its conversation
    asked: float
    question: str  # as typed
    standalone: str  # as answered (a follow-up made standalone)
    status: str  # PENDING (interrupted, if it stays so), ANSWERED, STOPPED or FAILED
    answer: str | None  # the answer's text, a notice, the stopped draft or the error
    citations: list[dict] = field(default_factory=list)  # Citation.to_json()
    hashes: dict[str, str] = field(default_factory=dict)  # cited file -> sha256 when answered
    details: dict = field(default_factory=dict)  # the rest of Answer.to_json()

    def to_json(self, changes: Mapping[str, str] | None = None) -> dict:
        """The turn for export; `changes` (file -> CHANGED or REMOVED) marks stale citations."""
        changes = changes or {}
        citations = [{**c, "changed_since": changes.get(c["file"])} for c in self.citations]
        return {
            "n": self.n,
            "asked": _iso(self.asked),
            "question": self.question,
            "standalone": self.standalone,
            "status": self.status,
            "answer": self.answer,
            "citations": citations,
            "hashes": self.hashes,
            **self.details,
        }


def file_sha256(path: Path) -> str | None:
    """The sha256 of a file's bytes, as the index manifest records it; None if it is gone."""
    try:
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def settled_answer(turn: Turn):
    """The turn's Answer as it was settled (without the retrieved chunks, which are not kept),
    for showing it again; None for a turn that was not answered."""
    if turn.status != ANSWERED:
        return None
    from .assistant import Answer
    from .citations import Citation
    from .passages import Passage

    details = turn.details
    passage = details.get("passage")
    return Answer(
        question=turn.standalone,
        text=turn.answer,
        abstained=bool(details.get("abstained")),
        citations=[Citation(**c) for c in turn.citations],
        hits=[],
        language=details.get("language", ""),
        timings_ms=details.get("timings_ms") or {},
        unsupported=details.get("unsupported") or [],
        reason=details.get("reason"),
        why=details.get("why"),
        passage=None if passage is None else Passage(**{**passage, "quote": "", "score": 0.0}),
        truncated=bool(details.get("truncated")),
        searched=None if details.get("searched") is None else tuple(details["searched"]),
        disagreements=[(d["answer"], d["citation"]) for d in details.get("disagreements") or []],
    )


def changes(turn: Turn, current_sha256: Callable[[str], str | None]) -> dict[str, str]:
    """The turn's cited files that changed or went since the answer: file -> CHANGED or REMOVED."""
    found = {}
    for file, then in turn.hashes.items():
        now = current_sha256(file)
        if now is None:
            found[file] = REMOVED
        elif now != then:
            found[file] = CHANGED
    return found


def folder_sha256(docs_dir: Path) -> Callable[[str], str | None]:
    """`current_sha256` for `changes`: a document's hash as it is in the folder now (each read once)."""
    seen: dict[str, str | None] = {}

    def current(file: str) -> str | None:
        if file not in seen:
            seen[file] = file_sha256(docs_dir / file)
        return seen[file]

    return current


def title_of(question: str) -> str:
    text = " ".join(question.split())
    return text if len(text) <= TITLE_CHARS else text[: TITLE_CHARS - 1].rstrip() + "…"


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(seconds))


class History:
    """The conversations in one SQLite file (created on first write)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @contextmanager
    def _db(self, write: bool = False):
        """A connection for one transaction, committed at its end (rolled back on an error)."""
        try:
            if write or self.path.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.path, timeout=30)
            else:  # nothing saved yet: an empty history, and no file made by merely looking
                db = sqlite3.connect(":memory:")
            with closing(db), db:
                db.execute("PRAGMA foreign_keys = ON")
                self._create(db)
                yield db
        except (OSError, sqlite3.Error) as error:
            raise RagError(f"the conversations file {self.path} cannot be used: {error}") from None

    @staticmethod
    def _create(db: sqlite3.Connection) -> None:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > _VERSION:
            raise RagError("the conversations file was written by a newer version of polyglot-rag")
        db.execute("PRAGMA journal_mode = WAL")  # kept in the file: every later connection uses it
        db.executescript(_SCHEMA)
        db.execute(f"PRAGMA user_version = {_VERSION}")

    # -- conversations ----------------------------------------------------------------------
    def conversations(self, owner: str = LOCAL) -> list[Conversation]:
        """The owner's conversations, the most recently used first."""
        with self._db() as db:
            rows = db.execute(
                "SELECT c.id, c.owner, c.title, c.created, c.updated, COUNT(t.n) FROM conversations c "
                "LEFT JOIN turns t ON t.conversation = c.id WHERE c.owner = ? "
                "GROUP BY c.id ORDER BY c.updated DESC, c.id DESC",
                (owner,),
            ).fetchall()
        return [Conversation(*row) for row in rows]

    def get(self, conversation_id: int, owner: str = LOCAL) -> Conversation:
        for conversation in self.conversations(owner):
            if conversation.id == conversation_id:
                return conversation
        raise RagError(f"there is no conversation {conversation_id}")

    def find(self, name: str, owner: str = LOCAL) -> Conversation:
        """A conversation by its title (the newest, if several have it) or its number."""
        conversations = self.conversations(owner)
        for conversation in conversations:
            if conversation.title == name:
                return conversation
        number = name.removeprefix("#")
        if number.isdigit():
            for conversation in conversations:
                if conversation.id == int(number):
                    return conversation
        raise RagError(f"there is no conversation named {name!r} (`rag chats list` lists them)")

    def create(self, title: str, owner: str = LOCAL) -> Conversation:
        title = title_of(title)
        if not title:
            raise RagError("a conversation needs a title")
        now = time.time()
        with self._db(write=True) as db:
            cursor = db.execute(
                "INSERT INTO conversations (owner, title, created, updated) VALUES (?, ?, ?, ?)",
                (owner, title, now, now),
            )
        return Conversation(cursor.lastrowid, owner, title, now, now, 0)

    def find_or_create(self, name: str, owner: str = LOCAL) -> Conversation:
        """The conversation with this title, or a new one; a #number must exist."""
        try:
            return self.find(name, owner)
        except RagError:
            if name.startswith("#") and name[1:].isdigit():
                raise
            return self.create(name, owner)

    def rename(self, conversation_id: int, title: str, owner: str = LOCAL) -> Conversation:
        title = title_of(title)
        if not title:
            raise RagError("the new title is empty")
        with self._db(write=True) as db:
            changed = db.execute(
                "UPDATE conversations SET title = ? WHERE id = ? AND owner = ?", (title, conversation_id, owner)
            ).rowcount
        if not changed:
            raise RagError(f"there is no conversation {conversation_id}")
        return self.get(conversation_id, owner)

    def delete(self, conversation_id: int, owner: str = LOCAL) -> None:
        with self._db(write=True) as db:
            deleted = db.execute(
                "DELETE FROM conversations WHERE id = ? AND owner = ?", (conversation_id, owner)
            ).rowcount
        if not deleted:
            raise RagError(f"there is no conversation {conversation_id}")

    # -- turns ------------------------------------------------------------------------------
    def turns(self, conversation_id: int, owner: str = LOCAL) -> list[Turn]:
        self.get(conversation_id, owner)
        with self._db() as db:
            rows = db.execute(
                "SELECT n, asked, question, standalone, status, answer, citations, hashes, details FROM turns "
                "WHERE conversation = ? ORDER BY n",
                (conversation_id,),
            ).fetchall()
        return [Turn(*row[:6], json.loads(row[6]), json.loads(row[7]), json.loads(row[8])) for row in rows]

    def history(self, conversation_id: int, owner: str = LOCAL) -> list[tuple[str, str]]:
        """The answered (standalone question, answer) pairs, oldest first, for follow-ups."""
        return [(t.standalone, t.answer or "") for t in self.turns(conversation_id, owner) if t.status == ANSWERED]

    def ask(self, conversation_id: int, question: str, standalone: str, owner: str = LOCAL) -> int:
        """Record a question as it is asked; its turn number, for `answer` or `end`."""
        now = time.time()
        with self._db(write=True) as db:
            if not db.execute(
                "UPDATE conversations SET updated = ? WHERE id = ? AND owner = ?", (now, conversation_id, owner)
            ).rowcount:
                raise RagError(f"there is no conversation {conversation_id}")
            (n,) = db.execute(
                "SELECT COALESCE(MAX(n), 0) + 1 FROM turns WHERE conversation = ?", (conversation_id,)
            ).fetchone()
            db.execute(
                "INSERT INTO turns (conversation, n, asked, question, standalone, status) VALUES (?, ?, ?, ?, ?, ?)",
                (conversation_id, n, now, question, standalone, PENDING),
            )
        return n

    def answer(
        self, conversation_id: int, n: int, answer, files: Mapping[str, Mapping], standalone: str | None = None
    ) -> None:
        """Complete a turn with its settled Answer; `files` is the index manifest's (file -> its
        "sha256" and more), whose hashes of the cited files are kept; `standalone`, the question
        as answered, if it differs from the one recorded."""
        record = answer.to_json()
        citations = record.pop("citations")
        for key in ("question", "answer", "retrieved", "passages"):  # kept elsewhere, or too large to keep
            record.pop(key, None)
        cited = {c["file"] for c in citations} | ({record["passage"]["file"]} if record.get("passage") else set())
        self._update(
            conversation_id,
            n,
            ANSWERED,
            answer.text,
            json.dumps(citations, ensure_ascii=False),
            json.dumps({f: files[f]["sha256"] for f in sorted(cited) if f in files}),
            json.dumps(record, ensure_ascii=False),
            standalone,
        )

    def end(self, conversation_id: int, n: int, status: str, text: str | None) -> None:
        """Close a turn without an answer: STOPPED with the draft so far, or FAILED with the error."""
        self._update(conversation_id, n, status, text, "[]", "{}", "{}")

    def _update(self, conversation_id, n, status, text, citations, hashes, details, standalone=None) -> None:
        with self._db(write=True) as db:
            db.execute(
                "UPDATE turns SET status = ?, answer = ?, citations = ?, hashes = ?, details = ?, "
                "standalone = COALESCE(?, standalone) WHERE conversation = ? AND n = ?",
                (status, text, citations, hashes, details, standalone, conversation_id, n),
            )
            db.execute("UPDATE conversations SET updated = ? WHERE id = ?", (time.time(), conversation_id))

    # -- export -----------------------------------------------------------------------------
    def export_json(
        self, conversation_id: int, current_sha256: Callable[[str], str | None], owner: str = LOCAL
    ) -> dict:
        conversation = self.get(conversation_id, owner)
        return {
            "id": conversation.id,
            "title": conversation.title,
            "created": _iso(conversation.created),
            "updated": _iso(conversation.updated),
            "turns": [t.to_json(changes(t, current_sha256)) for t in self.turns(conversation_id, owner)],
        }

    def export_markdown(
        self, conversation_id: int, current_sha256: Callable[[str], str | None], owner: str = LOCAL
    ) -> str:
        return to_markdown(self.export_json(conversation_id, current_sha256, owner))


def _location(citation: Mapping) -> str:
    from .citations import location

    return location(citation["file"], citation["paragraph"], citation.get("page"), citation.get("ocr", False))


STATUS_NOTES = {
    PENDING: "(interrupted: no answer was settled)",
    STOPPED: "(stopped)",
    FAILED: "(failed)",
}


def to_markdown(exported: Mapping) -> str:
    """A conversation's export as Markdown: each question, its answer, and the quoted sentences
    with where they stand; a citation whose document changed since says so."""
    lines = [
        f"# {exported['title']}",
        "",
        f"{len(exported['turns'])} questions, {exported['created']} to {exported['updated']}.",
        "",
    ]
    for turn in exported["turns"]:
        lines += [f"## {turn['n']}. {turn['question']}", ""]
        if turn["standalone"] != turn["question"]:
            lines += [f"*Understood as: {turn['standalone']}*", ""]
        answer = turn["answer"] or ""
        note = STATUS_NOTES.get(turn["status"])
        lines += [f"{answer} {note}".strip() if note else answer, ""]
        for citation in turn["citations"]:
            lines.append(f"> [{citation['n']}] “{citation['quote']}”  ")
            lines.append(f"> — {_location(citation)}")
            if citation.get("changed_since"):
                lines.append(f">\n> ⚠ {citation['changed_since']}")
            lines.append("")
        passage = turn.get("passage")
        if passage:
            lines += [f"> “{passage['text']}”  ", f"> — {_location(passage)} (the most relevant passage)", ""]
    return "\n".join(lines).rstrip() + "\n"


def conversations_json(conversations: Iterable[Conversation]) -> list[dict]:
    return [
        {"id": c.id, "title": c.title, "turns": c.turns, "created": _iso(c.created), "updated": _iso(c.updated)}
        for c in conversations
    ]
