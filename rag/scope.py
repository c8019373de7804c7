"""Which documents a question searches: chosen files, folders or document languages.

A Scope is what the user asked for (`ask --only PATTERN --lang ko`, the chat's picker,
`@file` in the question); `resolve` turns it into the set of indexed files it names, which
retrieval searches alone, before ranking (rag/retrieval.py). A pattern is a file name
(`contract.pdf`, in any folder), a path relative to the documents folder
(`reports/2024/q1.pdf`: that file alone), a folder (`reports` or `reports/`: everything
under it) or a glob (`*.pdf` on names, `reports/*.md` on paths; `*` also crosses `/`). Languages are the documents' own (the
language each file was detected in when indexed), named by ISO 639-1 code or English name.

A pattern or language that matches nothing is an error, not an empty search: a typo must
not quietly narrow the question to nothing, nor widen it to everything.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .errors import RagError
from .language import LANGUAGE_NAMES, language_name
from .text import units

_GLOB = re.compile(r"[*?\[]")
# `@name` at the start or after a space; `@"a name with spaces"` quoted. Not an e-mail address.
_MENTION = re.compile(r'(?:(?<=\s)|^)@(?:"([^"]+)"|(\S+))')
# Punctuation that ends a sentence after a mention: "what does @contract.pdf say?"
_TRAILING = ".,;:!?)]}'\"。，、；：！？）」』"
# A question names a document when it repeats, in one run, at least this many of the words of
# its title and at least half of them (so a short common phrase never narrows a search).
NAMING_WORDS = 3


@dataclass(frozen=True)
class Scope:
    only: tuple[str, ...] = ()  # patterns: file name, relative path, folder or glob
    languages: tuple[str, ...] = ()  # ISO 639-1 codes of document languages

    @classmethod
    def of(cls, only: list[str] | tuple[str, ...] = (), languages: list[str] | tuple[str, ...] = ()) -> Scope:
        """A scope from lists as a request gives them (languages by code or English name);
        RagError for a language this project does not detect."""
        codes = language_codes(",".join(languages))
        check_languages(codes)
        return cls(tuple(only), codes)

    def __bool__(self) -> bool:
        return bool(self.only or self.languages)

    def __or__(self, other: Scope) -> Scope:
        """Both scopes' patterns and languages (what one of them names is searched)."""
        return Scope(_unique(self.only + other.only), _unique(self.languages + other.languages))

    def resolve(self, files: dict[str, dict], docs_dir: Path | None = None) -> frozenset[str] | None:
        """The indexed files (of `files`, the store's manifest entries) the scope names, or None
        for no scope (everything). Patterns are joined (any of them), then narrowed to the
        languages if any are given. RagError for a pattern or language matching nothing."""
        if not self:
            return None
        chosen: set[str] = set()
        for pattern in self.only:
            matched = match_pattern(pattern, files, docs_dir)
            if not matched:
                raise RagError(_nothing_matches(pattern, files, docs_dir))
            chosen |= matched
        if self.languages:
            in_languages = {file for file, info in files.items() if info.get("language") in self.languages}
            if not in_languages:
                present = sorted({info.get("language", "") for info in files.values()} - {""})
                raise RagError(
                    f"no indexed document is in {' or '.join(map(language_name, self.languages))} "
                    f"(the documents are in {', '.join(f'{language_name(c)} ({c})' for c in present) or 'no language'})"
                )
            chosen = chosen & in_languages if self.only else in_languages
        if not chosen:
            named = " or ".join(repr(p) for p in self.only)
            languages = " or ".join(map(language_name, self.languages))
            raise RagError(f"the scope matches nothing: no document {named} names is in {languages}")
        return frozenset(chosen)


def _unique(items: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def language_codes(text: str) -> tuple[str, ...]:
    """Document languages from a comma-separated list of ISO 639-1 codes or English names
    (`ko,zh`, `Korean, Chinese`), as codes; what is neither is kept, for `check_languages`."""
    names = {name.casefold(): code for code, name in LANGUAGE_NAMES.items()}
    parts = (part.strip().casefold() for part in text.split(","))
    return tuple(names.get(part, part) for part in parts if part)


def check_languages(codes: tuple[str, ...]) -> None:
    """RagError naming the first code that is no document language this project detects."""
    for code in codes:
        if code not in LANGUAGE_NAMES:
            known = ", ".join(f"{c} ({name})" for c, name in LANGUAGE_NAMES.items())
            raise RagError(f"unknown language {code!r}; use one of {known}")


def _relative(pattern: str, docs_dir: Path | None) -> str:
    """A pattern as a path relative to the documents folder: `./a.txt` is `a.txt`, and a path
    that names a file or folder inside the documents folder (as a shell completes it, from
    here or absolute) is made relative to it."""
    cleaned = pattern.strip().replace("\\", "/")
    if docs_dir is not None and not _GLOB.search(cleaned):
        try:
            path = Path(cleaned).expanduser().resolve()
            inside = path.relative_to(docs_dir.resolve())
            if path.exists() and inside.parts:
                return inside.as_posix()
        except (OSError, ValueError, RuntimeError):
            pass
    return PurePosixPath(cleaned).as_posix().removeprefix("./") if cleaned not in ("", ".") else cleaned


def match_pattern(pattern: str, files: dict[str, dict] | list[str], docs_dir: Path | None = None) -> set[str]:
    """The files a pattern names: its exact path, every file of that name, everything under
    that folder, or what the glob matches (against the path, or the name for a glob without `/`)."""
    relative = _relative(pattern, docs_dir)
    if not relative or relative == ".":
        return set()
    if relative in files:  # a path names its file alone (even one with `[` or `*` in its name)
        return {relative}
    folder = relative.rstrip("/") + "/"
    matched = {f for f in files if f.rsplit("/", 1)[-1] == relative or f.startswith(folder)}
    if _GLOB.search(relative):
        on_name = "/" not in relative
        matched |= {f for f in files if fnmatch.fnmatchcase(f.rsplit("/", 1)[-1] if on_name else f, relative)}
    return matched


def _nothing_matches(pattern: str, files: dict[str, dict], docs_dir: Path | None) -> str:
    relative = _relative(pattern, docs_dir)
    if docs_dir is not None and not _GLOB.search(relative) and relative and (docs_dir / relative).exists():
        return f"{pattern!r} is in the documents folder but not in the index; run `rag index`"
    names = sorted(set(files) | {f.rsplit("/", 1)[-1] for f in files})
    close = difflib.get_close_matches(relative, names, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"no indexed document matches {pattern!r}{hint}"


def folders_of(files: list[str] | dict[str, dict]) -> list[str]:
    """Every folder (relative, ending in `/`) that holds an indexed file, for a scope picker."""
    return sorted({"/".join(f.split("/")[:depth]) + "/" for f in files for depth in range(1, f.count("/") + 1)})


# A picker's value for a document language: it starts with `/`, so it is never a relative path.
LANGUAGE_CHOICE = "/language/"


def scope_choices(files: dict[str, dict]) -> list[tuple[str, str]]:
    """(label, value) of each choice a scope picker offers: the documents' languages, then
    every folder, then every file."""
    languages = sorted({info.get("language") or "" for info in files.values()} - {""})
    return [
        *((f"{language_name(code)} documents ({code})", LANGUAGE_CHOICE + code) for code in languages),
        *((folder, folder) for folder in folders_of(files)),
        *((file, file) for file in sorted(files)),
    ]


def scope_of_choices(values: list[str] | None) -> Scope:
    """The scope a picker's chosen values name (see `scope_choices`)."""
    values = [v for v in values or [] if isinstance(v, str) and v]
    return Scope(
        _unique(tuple(v for v in values if not v.startswith(LANGUAGE_CHOICE))),
        _unique(tuple(v.removeprefix(LANGUAGE_CHOICE) for v in values if v.startswith(LANGUAGE_CHOICE))),
    )


def mentions(question: str, files: dict[str, dict]) -> tuple[str, Scope]:
    """The question without its `@file` mentions, and the scope they name. A mention is
    `@` and a file name, path or folder of the index (`@contract.pdf`, `@reports/`,
    `@"annual report.pdf"`); any other `@word` (a handle, `@home`) stays in the question,
    unless it looks like a document name (has a document suffix, or ends in `/`), which is
    then an error like an unknown `--only`."""
    from .documents import DOCUMENT_SUFFIXES

    patterns: list[str] = []

    def take(match: re.Match) -> str:
        quoted, bare = match.group(1), match.group(2)
        candidates = [quoted] if quoted else [bare, bare.rstrip(_TRAILING)]
        for name in candidates:
            if name and match_pattern(name, files):
                patterns.append(name)
                return "" if quoted or name == bare else bare[len(name) :]
        name = (quoted or bare.rstrip(_TRAILING)).strip()
        if quoted or name.casefold().endswith(DOCUMENT_SUFFIXES) or name.endswith("/"):
            raise RagError(_nothing_matches(name, files, None).replace(repr(name), repr("@" + name), 1))
        return match.group(0)

    stripped = _MENTION.sub(take, question)
    return " ".join(stripped.split()), Scope(_unique(tuple(patterns)))


def _words(text: str) -> list[str]:
    """The casefolded word units of `text` (a Han or kana character is one), punctuation left out."""
    text = text.casefold()
    return [text[start:end] for start, end in units(text) if text[start:end].isalnum()]


@functools.lru_cache(maxsize=1 << 16)
def _title_words(title: str) -> tuple[str, ...]:
    """A title's words, kept between questions: the titles of a library seldom change."""
    return tuple(_words(title))  # the "…" of a cut title is punctuation, left out like the rest


def _longest_run(a: list[str], b: list[str]) -> int:
    """The length of the longest run of words that `a` and `b` share, in order."""
    best, previous = 0, [0] * (len(b) + 1)
    for word in a:
        current = [0] * (len(b) + 1)
        for j, other in enumerate(b, 1):
            if word == other:
                current[j] = previous[j - 1] + 1
                best = max(best, current[j])
        previous = current
    return best


def named_files(question: str, files: dict[str, dict]) -> frozenset[str]:
    """The indexed files (of the store's manifest entries) that the question names, by file
    name ("what does contract.pdf say") or by title ("according to «Why I Joined OpenAI»"):
    a question that names its source is answered from that source alone, not from another
    file that states the fact differently. The title must be repeated, in one run, for at
    least NAMING_WORDS words and half of its words."""
    folded = question.casefold()
    asked = _words(question)
    runs = {
        tuple(asked[i : i + NAMING_WORDS]) for i in range(len(asked) - NAMING_WORDS + 1)
    }  # a cheap first test, so a large library costs a set lookup per title word
    named = set()
    for file, info in files.items():
        name = PurePosixPath(file).name.casefold()
        if name in folded and re.search(rf"(?<![\w.]){re.escape(name)}(?![\w])", folded):
            named.add(file)
            continue
        title = _title_words(info.get("title") or "")
        if len(title) < NAMING_WORDS or not any(
            tuple(title[i : i + NAMING_WORDS]) in runs for i in range(len(title) - NAMING_WORDS + 1)
        ):
            continue
        if 2 * _longest_run(asked, title) >= len(title):
            named.add(file)
    return frozenset(named)
