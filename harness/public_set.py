"""The public evaluation set (eval/public/): documents and gold questions built from public
question-answering datasets that nobody on the project wrote or tuned on.

The datasets' own text is never committed. What is committed is eval/public/selection.jsonl:
which source files (with their sha256), which source documents and questions, the dev/test
split (made once, by document), and the questions written for the set itself (the same facts
asked in another of the four languages, and unanswerable questions). This module reads the
source files from a folder and writes, into the output folder:

    docs/*.txt     one paragraph per line (the .txt rule of rag/readers.py)
    dev.jsonl      gold questions over the dev documents (format: eval/README.md)
    test.jsonl     the same over the test documents

    python -m harness.public_set --source DIR [--out eval/public]

Source formats: SQuAD-style JSON (CMRC 2018, COVID-QA) and the IndoNLU FacQA CSV (tokens
with BIO labels). How each becomes paragraphs is in its reader below; the evidence of a
question is the sentence around its answer span, copied from the paragraph written.
"""

from __future__ import annotations

import argparse
import ast
import csv
import hashlib
import json
import random
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from rag.errors import RagError
from rag.settings import PROJECT_ROOT

DEFAULT_OUT = PROJECT_ROOT / "eval" / "public"
SELECTION = "selection.jsonl"
SPLITS = ("dev", "test")
SPLIT_SEED = 23  # the dev/test assignment was drawn once with this seed and is recorded
EVIDENCE_LIMIT = 240  # longer sentences are cut to a window around the answer
CJK_LINE = 220  # a CMRC context is one run of text: sentences are packed into lines of about this size
NUMBER_WORDS = {
    "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
    "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
}  # fmt: skip


@dataclass(frozen=True)
class SourceQuestion:
    id: str
    question: str
    answers: tuple[str, ...]  # the dataset's answer texts, first the one located
    paragraph: int  # index of the paragraph holding the located answer
    start: int  # where the answer starts in that paragraph


@dataclass(frozen=True)
class SourceDocument:
    id: str
    lang: str
    paragraphs: tuple[str, ...]
    questions: dict[str, SourceQuestion] = field(default_factory=dict)


# -- sentences and evidence ------------------------------------------------------------------
_SENTENCE_END = re.compile(r"(?<=[。！？!?])[”」』）)]*|(?<=[.!?])[\"')\]]*(?=\s+[\"'(\[]?[A-Z0-9])")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of `text`: ends after 。！？ (and closing quotes), or after
    . ! ? followed by space and a capital or digit."""
    spans, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        end = match.end()
        if end > start:
            spans.append((start, end))
            start = end
    if start < len(text):
        spans.append((start, len(text)))
    return spans


def evidence_for(paragraph: str, start: int, answer: str) -> str:
    """The sentence of `paragraph` around the answer at `start`, trimmed; a window around the
    answer when that sentence is long. Always an exact substring of the paragraph."""
    end = start + len(answer)
    spans = sentence_spans(paragraph)
    first = next(s for s, e in spans if s <= start < e) if spans else 0
    last = next((e for s, e in spans if s < end <= e), len(paragraph))
    if last - first > EVIDENCE_LIMIT:
        margin = max(0, (EVIDENCE_LIMIT - len(answer)) // 2)
        first, last = max(first, start - margin), min(last, end + margin)
        while first > 0 and first < start and not paragraph[first - 1].isspace() and paragraph[first].isascii():
            first += 1  # do not start inside a word (CJK text has no spaces to find)
        while last < len(paragraph) and last > end and not paragraph[last].isspace() and paragraph[last - 1].isascii():
            last -= 1
    return paragraph[first:last].strip()


def _locate(context: str, text: str, start: int) -> int:
    """The offset of `text` in `context`: `start` if it is there, else the nearest occurrence
    (some datasets' answer_start is off by a few characters), -1 if absent."""
    if context[start : start + len(text)] == text:
        return start
    found = [m.start() for m in re.finditer(re.escape(text), context)]
    return min(found, key=lambda at: abs(at - start)) if found else -1


def _paragraphs_with_offsets(pieces: Iterable[tuple[int, str]]) -> tuple[list[str], list[int]]:
    """Stripped non-empty pieces and the context offset where each stripped piece starts."""
    texts, offsets = [], []
    for at, piece in pieces:
        stripped = piece.strip()
        if stripped:
            texts.append(stripped)
            offsets.append(at + len(piece) - len(piece.lstrip()))
    return texts, offsets


def _squad_document(doc_id: str, lang: str, pieces, offsets_of, qas) -> SourceDocument:
    paragraphs, offsets = pieces
    questions = {}
    for qa in qas:
        answers = [a["text"].strip() for a in qa.get("answers", []) if a.get("text", "").strip()]
        if not answers or qa.get("is_impossible"):
            continue
        first = qa["answers"][0]
        at = _locate(offsets_of, first["text"], first["answer_start"])
        if at < 0:
            continue
        at += len(first["text"]) - len(first["text"].lstrip())
        n = max(i for i, o in enumerate(offsets) if o <= at)
        local = at - offsets[n]
        if paragraphs[n][local : local + len(answers[0])] != answers[0]:
            continue  # the answer runs across two paragraphs
        question = " ".join(str(qa["question"]).split())
        qid = str(qa["id"])
        questions[qid] = SourceQuestion(qid, question, tuple(dict.fromkeys(answers)), n, local)
    return SourceDocument(doc_id, lang, tuple(paragraphs), questions)


def read_cmrc(path: Path) -> dict[str, SourceDocument]:
    """CMRC 2018 (SQuAD-style JSON; one Wikipedia passage per article, no line breaks): the
    title, then the passage's sentences packed into lines of about CJK_LINE characters."""
    documents = {}
    for article in _load_json(path)["data"]:
        for passage in article["paragraphs"]:
            context = passage["context"]
            lines, line_start, line_end = [], 0, 0
            for _, e in sentence_spans(context):
                if e - line_start > CJK_LINE and line_end > line_start:
                    lines.append((line_start, context[line_start:line_end]))
                    line_start = line_end
                line_end = e
            lines.append((line_start, context[line_start:]))
            texts, offsets = _paragraphs_with_offsets(lines)
            title = " ".join(article.get("title", "").split())
            doc = _squad_document(passage["id"], "zh", (texts, offsets), context, passage["qas"])
            if title:
                doc = SourceDocument(
                    doc.id,
                    doc.lang,
                    (title, *doc.paragraphs),
                    {
                        k: SourceQuestion(q.id, q.question, q.answers, q.paragraph + 1, q.start)
                        for k, q in doc.questions.items()
                    },
                )
            documents[doc.id] = doc
    return documents


def read_covidqa(path: Path) -> dict[str, SourceDocument]:
    """COVID-QA (SQuAD-style JSON; one whole scientific article per context): one paragraph per
    non-blank line of the article."""
    documents = {}
    for article in _load_json(path)["data"]:
        for passage in article["paragraphs"]:
            context = passage["context"]
            pieces, at = [], 0
            for line in context.split("\n"):
                pieces.append((at, line))
                at += len(line) + 1
            doc_id = str(passage.get("document_id", len(documents)))
            documents[doc_id] = _squad_document(doc_id, "en", _paragraphs_with_offsets(pieces), context, passage["qas"])
    return documents


_NO_SPACE_BEFORE = re.compile(r" ([.,;:!?)%\]])")
_NO_SPACE_AFTER = re.compile(r"([(\[]) ")


def detokenize(tokens: Iterable[str]) -> str:
    """Tokens joined back into text: no space before closing punctuation or after an opening bracket."""
    return _NO_SPACE_AFTER.sub(r"\1", _NO_SPACE_BEFORE.sub(r"\1", " ".join(tokens)))


@dataclass(frozen=True)
class FacqaRow:
    row: int
    question: str
    passage: str
    answer: str
    start: int


def read_facqa(path: Path) -> list[FacqaRow]:
    """IndoNLU FacQA (CSV of token lists with BIO answer labels), one row per question; rows
    whose answer cannot be found again in the detokenized passage are left out."""
    rows = []
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            for number, record in enumerate(csv.DictReader(handle)):
                question = detokenize(ast.literal_eval(record["question"]))
                tokens = ast.literal_eval(record["passage"])
                labels = ast.literal_eval(record["seq_label"])
                span = [i for i, label in enumerate(labels) if label != "O"]
                if not span or span != list(range(span[0], span[-1] + 1)):
                    continue
                passage = detokenize(tokens)
                answer = detokenize(tokens[span[0] : span[-1] + 1])
                before = detokenize(tokens[: span[0]])
                start = _locate(passage, answer, len(before) + 1 if before else 0)
                if start >= 0:
                    rows.append(FacqaRow(number, question, passage, answer, start))
    except (OSError, KeyError, ValueError, SyntaxError) as error:
        raise RagError(f"cannot read FacQA file {path}: {error}") from None
    return rows


def facqa_documents(rows: list[FacqaRow], groups: dict[str, list[int]]) -> dict[str, SourceDocument]:
    """FacQA has no articles: each document is a recorded group of its news passages (rows)."""
    by_row = {r.row: r for r in rows}
    documents = {}
    for doc_id, members in groups.items():
        paragraphs: list[str] = []
        questions = {}
        for row in members:
            if row not in by_row:
                raise RagError(f"FacQA row {row} (document {doc_id}) is missing or has no locatable answer")
            r = by_row[row]
            if r.passage not in paragraphs:
                paragraphs.append(r.passage)
            questions[str(row)] = SourceQuestion(
                str(row), r.question, (r.answer,), paragraphs.index(r.passage), r.start
            )
        documents[doc_id] = SourceDocument(doc_id, "id", tuple(paragraphs), questions)
    return documents


def _load_json(path: Path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise RagError(f"cannot read {path}: {error}") from None


READERS = {"squad-cmrc": read_cmrc, "squad-covidqa": read_covidqa}


# -- the selection -----------------------------------------------------------------------------
def read_selection(path: Path) -> list[dict]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise RagError(f"cannot read the selection {path}: {error.strerror or error}") from None
    rows = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise RagError(f"{path}, line {number}: not valid JSON ({error.msg})") from None
    return rows


def assign_splits(documents: Iterable[str], seed: int = SPLIT_SEED) -> dict[str, str]:
    """Half of the documents to dev and half to test, drawn with `seed` (order-independent)."""
    ordered = sorted(documents)
    random.Random(seed).shuffle(ordered)
    return {doc: SPLITS[i % 2] for i, doc in enumerate(ordered)}


_MONTH = re.compile(
    r"jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec|mei|agu|okt|des|月", re.IGNORECASE
)  # a date's day number alone is no answer


def number_aliases(answer: str) -> list[str]:
    """The digits a right answer may give instead of a short answer's one number: 'five' → '5',
    '76 amino acids' → '76', '1918年秋' → '1918'; none for dates, ranges and long answers."""
    answer = answer.strip()
    if len(answer) > 30 or _MONTH.search(answer):
        return []
    found = re.findall(r"\d[\d,.]*\d|\d", answer)
    found += [NUMBER_WORDS[w] for w in re.findall(r"[a-z]+", answer.lower()) if w in NUMBER_WORDS]
    return found if len(found) == 1 and found[0] != answer else []


def kind_of(answers: Iterable[str]) -> str:
    answers = list(answers)
    return "number" if any(re.search(r"\d", a) or a.strip().lower() in NUMBER_WORDS for a in answers) else "fact"


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_sources(selection: list[dict], source_dir: Path) -> dict[str, dict[str, SourceDocument]]:
    """Each source's documents, read from `source_dir` after checking the file is the recorded one."""
    found: dict[str, dict[str, SourceDocument]] = {}
    groups: dict[str, dict[str, list[int]]] = {}
    for row in selection:
        if row.get("type") == "document" and "rows" in row:
            groups.setdefault(row["source"], {})[row["doc"]] = row["rows"]
    for row in selection:
        if row.get("type") != "source":
            continue
        path = Path(source_dir) / row["file"]
        if not path.is_file():
            raise RagError(f"source file not found: {path} (fetch {row['repo']} and copy {row['path']} there)")
        if row.get("sha256") and _sha256(path) != row["sha256"]:
            raise RagError(f"{path} is not the recorded version of {row['repo']}:{row['path']} (sha256 differs)")
        if row["format"] == "facqa-csv":
            found[row["name"]] = facqa_documents(read_facqa(path), groups.get(row["name"], {}))
        elif row["format"] in READERS:
            found[row["name"]] = READERS[row["format"]](path)
        else:
            raise RagError(f"unknown source format {row['format']!r}")
    return found


def build(selection: list[dict], source_dir: Path) -> tuple[dict[str, list[str]], dict[str, list[dict]]]:
    """The documents (file → paragraphs) and the gold rows of each split."""
    sources = load_sources(selection, source_dir)
    documents: dict[str, SourceDocument] = {}
    files: dict[str, list[str]] = {}
    split_of: dict[str, str] = {}
    for row in selection:
        if row.get("type") == "document":
            try:
                doc = sources[row["source"]][row["doc"]]
            except KeyError:
                raise RagError(f"document {row['doc']!r} is not in source {row['source']!r}") from None
            documents[row["file"]] = doc
            files[row["file"]] = list(doc.paragraphs)
            split_of[row["file"]] = row["split"]
    gold: dict[str, list[dict]] = {split: [] for split in SPLITS}
    for row in selection:
        if row.get("type") != "question":
            continue
        if row.get("kind") == "unanswerable":
            item = {"id": row["id"], "question": row["question"], "lang": row["lang"], "file": None,
                    "evidence": None, "answers": [], "kind": "unanswerable"}  # fmt: skip
            gold[split_of[row["about"]]].append(item)
            continue
        doc = documents.get(row["file"])
        if doc is None or row["source_question"] not in doc.questions:
            raise RagError(f"question {row['id']}: {row['source_question']!r} is not a question of {row['file']}")
        source = doc.questions[row["source_question"]]
        paragraph = doc.paragraphs[source.paragraph]
        evidence = " ".join(evidence_for(paragraph, source.start, source.answers[0]).split())
        if "question" in row:  # written for this set: the same fact asked in another language
            answers = list(dict.fromkeys([*row["answers"], *source.answers]))
            item = {"id": row["id"], "question": row["question"], "lang": row["lang"], "file": row["file"],
                    "evidence": evidence, "answers": answers, "kind": row.get("kind", "cross")}  # fmt: skip
        else:
            aliases = [a for s in source.answers for a in number_aliases(s)]
            answers = list(dict.fromkeys([*source.answers, *aliases, *row.get("also", [])]))
            item = {"id": row["id"], "question": source.question, "lang": doc.lang, "file": row["file"],
                    "evidence": evidence, "answers": answers, "kind": kind_of(source.answers)}  # fmt: skip
        gold[split_of[row["file"]]].append(item)
    return files, gold


def write(files: dict[str, list[str]], gold: dict[str, list[dict]], out: Path) -> list[str]:
    """docs/*.txt and the jsonl splits; the names of other .txt files found in docs/ (left alone:
    the builder deletes nothing it did not write)."""
    docs = Path(out) / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    for name, paragraphs in files.items():
        (docs / name).write_text("\n".join(" ".join(p.split()) for p in paragraphs) + "\n", encoding="utf-8")
    for split, rows in gold.items():
        with open(Path(out) / f"{split}.jsonl", "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return sorted(path.name for path in docs.glob("*.txt") if path.name not in files)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.public_set", description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, required=True, metavar="DIR", help="folder holding the source files")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="DIR", help="where docs/ and the jsonl go")
    parser.add_argument("--selection", type=Path, help=f"the selection file (default: {SELECTION} in the out folder)")
    args = parser.parse_args(argv)
    try:
        selection = read_selection(args.selection or DEFAULT_OUT / SELECTION)
        files, gold = build(selection, args.source)
        others = write(files, gold, args.out)
    except RagError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    counts = ", ".join(f"{split} {len(rows)}" for split, rows in gold.items())
    print(f"{len(files)} documents in {args.out / 'docs'}; questions: {counts}")
    if others:
        print(f"note: {len(others)} other .txt files in {args.out / 'docs'} are not part of the set", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
