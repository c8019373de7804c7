"""The `ask` and `rag` commands: thin shells over one Assistant."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

from . import prompts
from .errors import RagError
from .settings import add_scope_flags, add_settings_flags, settings_from_args, settings_options
from .terminal import json_line, printable

# The `rag` subcommands: `name = "module:attribute"` entry points naming a Command, so that a
# shell (the UI, the evaluation harness) plugs in without the core importing it.
COMMANDS_GROUP = "polyglot_rag.commands"


@dataclass(frozen=True)
class Command:
    """A `rag` subcommand. `add_arguments` adds its own flags (the settings flags are already
    there); `run` does the work and imports heavy libraries only when called."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _quiet_libraries() -> None:
    """Keep stdout for answers: no hub access, no library chatter."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import warnings

    warnings.filterwarnings("ignore")


class _Output:
    """Standard output, whose failure to take the result (a full disk, an I/O error) is a
    one-line error instead of a traceback, or of a status that says nothing was lost."""

    def __init__(self, stream) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except BrokenPipeError:  # the reader left (`| head`): not an error
            raise
        except OSError as error:
            raise OutputError(f"cannot write the result to standard output ({error.strerror or error})") from None

    def flush(self) -> None:
        try:
            self.stream.flush()
        except BrokenPipeError:
            raise
        except OSError as error:
            raise OutputError(f"cannot write the result to standard output ({error.strerror or error})") from None

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


class OutputError(RagError):
    """Standard output cannot be written."""


def _discard_output() -> None:
    """Point standard output's descriptor at /dev/null, so that what is still buffered for it
    goes nowhere at exit instead of failing again (as Python's documentation does on SIGPIPE)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.__stdout__.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no descriptor (a StringIO in tests)
        pass


def _run(program: str, main: Callable[[], int], prints: bool = True) -> int:
    """Run a command: user errors become one line on stderr and exit status 1. A command that
    `prints` its result refuses to start when standard output is closed (`>&-`), where Python
    would discard every print and exit 0 with the result lost, and fails in one line when the
    result cannot be written (a full disk)."""
    stdout = sys.stdout
    try:
        if prints and sys.stdout is None:
            raise RagError("standard output is closed; the result would be lost (remove `>&-`)")
        if prints:
            sys.stdout = _Output(stdout)
        status = main()
        if prints:
            sys.stdout.flush()  # a write that fails does so here, not after the exit status is set
        return status
    except RagError as error:
        if isinstance(error, OutputError):
            _discard_output()
        print(f"{program}: error: {printable(str(error))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{program}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _discard_output()
        return 0
    finally:
        sys.stdout = stdout


# -- ask ----------------------------------------------------------------------------------
SEARCHED_SHOWN = 5  # files named in the "Searched only" line; the rest are counted


def titled(file: str, table: dict[str, dict], where: str | None = None) -> str:
    """A document as a reader knows it: its title, then `where` in it (default: its file name);
    `where` alone when the index has no title for it (`table`: the index's file table)."""
    title, where = (table.get(file) or {}).get("title"), printable(where or file)
    return f"{printable(title)} ({where})" if title and title != file else where


def searched(files: tuple[str, ...], table: dict[str, dict] | None = None) -> str:
    """The documents a scoped question searched, for one line: a few named, the rest counted."""
    named = "; ".join(titled(file, table or {}) for file in files[:SEARCHED_SHOWN])
    more = f" and {len(files) - SEARCHED_SHOWN} more" if len(files) > SEARCHED_SHOWN else ""
    return f"{len(files)} document{'s' if len(files) != 1 else ''}: {named}{more}"


def _stale_note(assistant) -> str | None:
    """One line when the documents folder changed since the index was built, else None."""
    try:
        changes = assistant.folder_changes()
    except RagError as error:  # a folder gone or unreadable: the index still answers
        return f"ask: note: cannot compare the documents with the index ({error}); answering from the index as it is"
    if not changes:
        return None
    return (
        f"ask: note: the documents folder changed since the index was built ({changes.summary()}); "
        f"answering from the index as it is; run `rag index` to update it"
    )


def _print_answer(answer, table: dict[str, dict]) -> None:
    """The answer, then the sentence each citation rests on, verbatim, under its document's
    title (`table`: the index's file table); an unchecked claim only as such, beside the passage
    the reader can judge it by. Document text and file names are printed through `printable`
    (terminal escapes shown, never run)."""
    if answer.searched is not None:
        print(f"Searched only {searched(answer.searched, table)}.")
    if answer.searched_as:
        print(f"↳ also searched as “{printable(answer.searched_as)}”")
    if answer.text is None:  # retrieve-only
        print("Retrieved:")
        for n, h in enumerate(answer.hits, 1):
            text = " ".join(h.chunk.text.split())
            print(
                f"[{n}] {printable(h.chunk.file)} ¶{h.chunk.first}-{h.chunk.last} ({h.score:.3f}): "
                f"{printable(text[:150])}"
            )
        return
    print(printable(answer.shown, keep_newlines=True))
    for c in answer.citations:
        print(f"  [{c.n}] {titled(c.file, table, c.location)}: “{printable(c.quote)}”")
    if answer.truncated:
        print(prompts.truncated(answer.language))
    if answer.passage is not None:
        print(f"  {printable(answer.passage.location)}: “{printable(answer.passage.text)}”")
    for claim in answer.unsupported:
        print(
            f"Not confirmed by the documents, so not given as the answer: “{printable(claim)}” "
            f"({printable(str(answer.why))})"
        )


def _ask_one(assistant, question: str, args, chat=None) -> None:
    """Answer and print one question; with `chat` (history, conversation), as its next turn."""
    if chat is None:
        answer = assistant.ask(question, retrieve_only=args.retrieve_only)
    else:
        answer, rewrite = _ask_in_chat(assistant, question, *chat)
        if rewrite.rewritten and not args.json:
            print(f"↳ understood as “{printable(rewrite.standalone)}”")
    if args.json:
        print(json_line(answer.to_json()), flush=True)
        return
    # The answer is printed once it is checked: a streamed draft could show a claim the
    # check then withdraws.
    _print_answer(answer, assistant.index.files)
    sys.stdout.flush()


def _ask_in_chat(assistant, question: str, history, conversation: int):
    """The question answered as the conversation's next turn, its earlier turns used for a
    follow-up; recorded before it is answered, so an interrupted one is kept too."""
    from .assistant import clean_question
    from .history import FAILED, STOPPED

    question = clean_question(question)
    earlier = history.history(conversation)
    n = history.ask(conversation, question, question)
    try:
        asked, scope = assistant.without_mentions(question)
        rewrite = assistant.standalone_question(earlier, asked)
        answer = assistant.ask(rewrite.standalone, scope=scope)
    except RagError as error:
        history.end(conversation, n, FAILED, str(error))
        raise
    except KeyboardInterrupt:
        history.end(conversation, n, STOPPED, None)
        raise
    history.answer(conversation, n, answer, assistant.index.files, rewrite.standalone)
    return answer, rewrite


def _ask_batch(assistant, args, chat=None) -> int:
    """One question per input line, one JSON object per output line; errors don't stop the batch."""
    failures = 0
    if hasattr(sys.stdin, "reconfigure"):  # bytes that are not UTF-8 become U+FFFD, not a traceback
        sys.stdin.reconfigure(errors="replace")
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            _ask_one(assistant, line.rstrip("\n"), args, chat)
        except RagError as error:
            failures += 1
            print(json_line({"question": line.rstrip("\n"), "error": str(error)}), flush=True)
    return 1 if failures else 0


def ask_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ask",
        parents=[settings_options()],
        description="Answer a question from the documents, with citations to file and paragraph.",
    )
    parser.add_argument("question", help='the question, or "-" to read one question per line from stdin')
    parser.add_argument("--json", action="store_true", help="print one JSON object per question")
    parser.add_argument("--retrieve-only", action="store_true", help="only retrieve passages; no LLM")
    parser.add_argument(
        "--chat",
        metavar="NAME",
        help="ask as the next turn of this conversation (its title or number; created if there is none), "
        "so a follow-up can lean on its earlier answers; `rag chats` lists and exports them",
    )
    add_settings_flags(parser, generation=True)
    add_scope_flags(parser)
    args = parser.parse_args(argv)

    def main() -> int:
        from .assistant import Assistant, clean_question
        from .stores import store_exists

        if args.question != "-":
            clean_question(args.question)  # fail fast, before any model loads
        if args.chat is not None and args.retrieve_only:
            raise RagError("--chat keeps answers; --retrieve-only gives none: use one or the other")
        _quiet_libraries()
        assistant = Assistant(settings_from_args(args))
        chat = None
        if args.chat is not None:
            from .history import History

            history = History(assistant.settings.chats_path)
            name = " ".join(args.chat.split())
            chat = (history, history.find_or_create(name).id) if name else None
            if chat is None:
                raise RagError("--chat needs a name")
        preloading = None
        if not args.retrieve_only and store_exists(assistant.settings):  # a build logs progress
            preloading = assistant.preload_llm()
        try:
            note = _stale_note(assistant)  # loads the index, as the question would
            if note:
                if preloading is not None:  # the LLM's load silences stderr meanwhile
                    preloading.join()
                print(printable(note), file=sys.stderr, flush=True)
            if args.question == "-":
                return _ask_batch(assistant, args, chat)
            _ask_one(assistant, args.question, args, chat)
        finally:  # an error is printed after the load (see Assistant.preload_llm)
            if preloading is not None:
                preloading.join()
        return 0

    return _run("ask", main)


# -- rag ----------------------------------------------------------------------------------
def _index_command(args) -> int:
    from tqdm import tqdm

    from .assistant import Assistant

    assistant = Assistant(settings_from_args(args))
    bar = None
    units = {"Reading": "file", "Chunking": "char", "Embedding": "chunk"}

    def progress(stage: str, done: int, total: int) -> None:
        nonlocal bar
        if bar is None or bar.desc != stage:
            if bar is not None:
                bar.close()
            bar = tqdm(
                total=total or None,
                unit=units.get(stage, "it"),
                unit_scale=stage == "Chunking",
                desc=stage,
                file=sys.stderr,
            )
        bar.update(done - bar.n)

    # No bars beside JSON (a disabled tqdm has no `desc` to compare stages by).
    shown = None if args.json else progress
    try:
        if args.include:
            report = assistant.library.include(args.include, rebuild=args.rebuild, progress=shown)
        else:
            report = assistant.update_index(rebuild=args.rebuild, progress=shown)
    finally:  # closed before any error is printed, so that the error is the last line
        if bar is not None:
            bar.close()
    if args.json:
        print(json_line(report.to_json()), flush=True)
        return _watch(assistant, args.json) if args.watch else 0
    if report.rebuilt_reason:
        print(f"Full build ({report.rebuilt_reason}).")
    print(
        f"{len(report.embedded_files) + len(report.unchanged_files)} files, {report.chunks_total} chunks in "
        f"{printable(assistant.settings.index_location)}: {report.chunks_embedded} chunks embedded from "
        f"{len(report.embedded_files)} new or changed files, {len(report.unchanged_files)} unchanged, "
        f"{len(report.removed_files)} removed ({report.seconds:.1f} s)."
    )
    indexed = set(report.embedded_files) | set(report.unchanged_files)
    for skipped in report.skipped:  # a file read with a caveat is indexed, and the caveat shown
        print(
            f"{'note' if skipped.file in indexed else 'skipped'} {printable(skipped.file)}: {printable(skipped.reason)}"
        )
    return _watch(assistant, args.json) if args.watch else 0


def _watch(assistant, as_json: bool) -> int:
    """Index the documents folder's changes as they happen, one line each, until Ctrl+C."""
    import threading

    from .watch import FolderWatcher, announcer, describe

    if as_json:  # one JSON object per update, as for the first
        show = announcer(lambda line: print(line, flush=True), lambda report: json_line(report.to_json()), starts=False)
    else:
        show = announcer(lambda line: print(printable(line), flush=True), describe)
    sys.stdout.flush()  # the first build's lines, before the watcher's
    folder = assistant.settings.docs_dir
    watcher = FolderWatcher(assistant, on_change=show).start()
    print(f"Watching {printable(str(folder))} ({watcher.how}); Ctrl+C stops.", file=sys.stderr, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        watcher.stop()
        print(f"Stopped watching {printable(str(folder))}.", file=sys.stderr, flush=True)
    return 0


def _index_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rebuild", action="store_true", help="re-embed every document")
    parser.add_argument(
        "--include",
        action="append",
        metavar="NAME",
        default=[],
        help="bring back a document removed from the index in the chat (listed as skipped by `rag index`)",
    )
    parser.add_argument("--json", action="store_true", help="print what was done as JSON")
    parser.add_argument(
        "--watch",
        action="store_true",
        help="then keep watching the documents folder, indexing files as they are added, changed or removed "
        "(Ctrl+C stops)",
    )


index_command = Command("build or update the index from the documents", _index_arguments, _index_command)


def _models_command(args) -> int:
    from models.catalogue import CATALOGUE
    from models.provision import provision

    settings = settings_from_args(args)
    log = lambda message: print(message, file=sys.stderr)
    in_use = {model.name for model in (settings.llm_model, settings.embedder_model) if model is not None}
    for model in CATALOGUE:
        if args.all or model.name in in_use:
            path = provision(model, settings.models_dir, log)
            size = (
                path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
            )
            state = f"{path} ({size / 2**20:.0f} MiB, {'sha256 verified' if model.pin else 'verified'})"
        else:
            state = (
                "not provisioned (`rag models --all`)"
                if not (settings.models_dir / model.target).exists()
                else f"{settings.models_dir / model.target}"
            )
        use = " <- in use" if model.name in in_use else ""
        print(f"{model.kind:8}  {model.name:10}  {model.title}: {state}{use}")
    if settings.llm_url:
        print(f"LLM in use: OpenAI-compatible server at {settings.llm_url}")
    elif settings.llm_model is None:
        path = settings.llm_path
        print(
            f"LLM in use: {path} ({path.stat().st_size / 2**20:.0f} MiB)"
            if path.is_file()
            else f"LLM in use: {path} (MISSING)"
        )
    if settings.embedder_model is None:
        print(f"Embedder in use: {settings.embedder_name}")
    return 0


def _models_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--all", action="store_true", help="provision every model of the catalogue")


models_command = Command(
    "provision the models in use (the defaults, or --llm/--embedder names) and list the catalogue",
    _models_arguments,
    _models_command,
)


def _chats_command(args) -> int:
    from .history import History, conversations_json, folder_sha256

    settings = settings_from_args(args)
    history = History(settings.chats_path)
    owner = args.user or ""
    if args.action == "list":
        conversations = history.conversations(owner)
        if args.json:
            print(json_line(conversations_json(conversations)))
        for c in [] if args.json else conversations:
            print(f"#{c.id}  {printable(c.label)}  ({c.turns} question{'s' if c.turns != 1 else ''})")
        if not conversations and not args.json:
            print(f"No conversations yet in {printable(str(settings.chats_path))}.", file=sys.stderr)
        return 0
    if args.name is None:
        raise RagError(f"`rag chats {args.action}` needs the conversation's title or #number")
    conversation = history.find(args.name, owner)
    if args.action == "export":
        current = folder_sha256(settings.docs_dir)
        if args.json:
            print(json_line(history.export_json(conversation.id, current, owner)))
        else:
            print(history.export_markdown(conversation.id, current, owner), end="")
    elif args.action == "rename":
        if not args.title:
            raise RagError("`rag chats rename NAME NEW_TITLE` needs the new title")
        renamed = history.rename(conversation.id, args.title, owner)
        print(f"#{renamed.id} is now {printable(renamed.title)!r}")
    else:
        history.delete(conversation.id, owner)
        print(f"Deleted #{conversation.id} {printable(conversation.title)!r}")
    return 0


def _chats_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("list", "export", "rename", "delete"), help="what to do")
    parser.add_argument("name", nargs="?", help="the conversation: its title or #number (`rag chats list`)")
    parser.add_argument("title", nargs="?", help="rename: the new title")
    parser.add_argument("--json", action="store_true", help="list or export as JSON (export: Markdown otherwise)")
    parser.add_argument("--user", help="the signed-in user whose conversations these are (default: the local ones)")


chats_command = Command(
    "list, export (Markdown or JSON), rename or delete saved conversations",
    _chats_arguments,
    _chats_command,
)


def _commands() -> dict[str, Command]:
    from importlib.metadata import entry_points

    found = {entry.name: entry for entry in entry_points(group=COMMANDS_GROUP)}
    if not found:
        raise RagError("no rag subcommands are registered: install the project (pip install -e .)")
    commands = {}
    for name in sorted(found):
        try:
            commands[name] = found[name].load()
        except (ImportError, AttributeError) as error:  # an install older or newer than the code
            raise RagError(
                f"the subcommand {name} ({found[name].value}) cannot be loaded ({error}); "
                f"install the project again (pip install -e .)"
            ) from None
    return commands


def rag_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rag", description="Manage and evaluate the polyglot-rag assistant.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    try:
        commands = _commands()
    except RagError as error:
        print(f"rag: error: {error}", file=sys.stderr)
        return 1
    common = settings_options()
    for name, command in commands.items():
        command.add_arguments(subparsers.add_parser(name, parents=[common], help=command.help))
    args = parser.parse_args(argv)

    def main() -> int:
        _quiet_libraries()
        return commands[args.command].run(args)

    return _run("rag", main, prints=args.command != "ui")
