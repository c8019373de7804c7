"""The chat in the browser: `rag ui` starts a Gradio app built from one Assistant.

The page streams answers, links each [n] marker to the passage it cites (file, paragraph,
supporting sentence highlighted, context on click), lists and manages the documents, and
offers the pipeline to scripts as the `/ask` API endpoint (the `ask --json` object).
Everything goes through the Assistant's public API; gradio is imported only in here.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rag.cli import Command
from rag.errors import RagError
from rag.settings import add_settings_flags, is_local_host, settings_from_args

from . import render
from .signin import SignInGuard

UI_DIR = Path(__file__).resolve().parent
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
DEFAULT_MAX_UPLOAD_MB = 5
MAX_UPLOAD_MB = 20  # the documents reader's own limit
# Everything that runs the LLM or rewrites the index shares one queue slot: llama.cpp does
# one generation at a time, and a question should not see the index change under it.
LLM_QUEUE = "llm"
QUEUE_SIZE = 64
# Slider ranges (the server clamps whatever a client sends to these).
K_RANGE = (1, 20)
MAX_TOKENS_RANGE = (32, 1024)
TEMPERATURE_RANGE = (0.0, 1.5)

# One starter question per language, answerable from the seed documents.
EXAMPLES = [
    ("English", "In which year was OpenAI founded, according to the WSJ-based report?"),
    ("한국어", "OpenAI는 메타의 '초지능' 팀에 최소 몇 명의 연구원을 잃었나요?"),
    ("中文", "韩文总结说,OpenAI 内部几乎不用邮件,沟通全靠什么工具?"),
    ("Indonesia", "Sebelum bekerja di OpenAI, perusahaan apa yang pernah ikut didirikan Calvin French-Owen?"),
]


@dataclass(frozen=True)
class UiOptions:
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_MB * 2**20
    read_only: bool = False  # no upload or removal of documents
    title: str = "Polyglot RAG"


# -- command line --------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST}: this machine only)"
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument(
        "--auth", metavar="USER:PASSWORD", help="require this sign-in (env RAG_UI_AUTH); needed with a non-local --host"
    )
    parser.add_argument(
        "--no-auth",
        action="store_true",
        help="allow a non-local --host without sign-in (anyone on the network can use it)",
    )
    parser.add_argument(
        "--max-upload-mb",
        type=float,
        default=DEFAULT_MAX_UPLOAD_MB,
        help=f"largest document that can be uploaded, in MB (default {DEFAULT_MAX_UPLOAD_MB})",
    )
    parser.add_argument("--read-only", action="store_true", help="no uploading or removing of documents")
    add_settings_flags(parser, generation=True)


def parse_auth(value: str | None) -> tuple[str, str] | None:
    if not value:
        return None
    user, colon, password = value.partition(":")
    if not colon or not user or not password:
        raise RagError("--auth must be USER:PASSWORD, both non-empty")
    return user, password


def exposure(host: str, auth: tuple[str, str] | None, no_auth: bool) -> str:
    """How the app is exposed, in words for the start-up message; RagError if unsafe."""
    if auth and no_auth:
        raise RagError("--auth and --no-auth contradict each other; choose one")
    if is_local_host(host):
        return f"this machine only; sign-in required as {auth[0]!r}" if auth else "this machine only"
    if auth:
        return f"reachable from the network; sign-in required as {auth[0]!r}"
    if no_auth:
        return (
            "WARNING: reachable from the network WITHOUT sign-in, as --no-auth asked: "
            "anyone who can reach it can use it"
        )
    raise RagError(
        f"--host {host} makes the chat reachable from the network: add --auth USER:PASSWORD, "
        f"or --no-auth to allow it without sign-in"
    )


def run(args: argparse.Namespace) -> int:
    from rag.assistant import Assistant

    auth = parse_auth(args.auth or os.environ.get("RAG_UI_AUTH"))
    how = exposure(args.host, auth, args.no_auth)
    if not 0 < args.max_upload_mb <= MAX_UPLOAD_MB:
        raise RagError(f"--max-upload-mb must be more than 0 and at most {MAX_UPLOAD_MB}")
    if not 0 < args.port < 65536:
        raise RagError(f"--port must be between 1 and 65535, not {args.port}")
    assistant = Assistant(settings_from_args(args))
    log = lambda message: print(message, file=sys.stderr, flush=True)
    warm_up(assistant, log)
    options = UiOptions(max_upload_bytes=int(args.max_upload_mb * 2**20), read_only=args.read_only)
    demo, url = serve(assistant, options, host=args.host, port=args.port, auth=auth)
    print(f"Chat running at {url} (listening on {args.host}:{args.port}, {how}). Press Ctrl+C to stop.", flush=True)
    try:
        demo.block_thread()
    finally:
        demo.close()
    return 0


command = Command("start the chat in the browser", add_arguments, run)


# -- start-up ------------------------------------------------------------------------------
def warm_up(assistant, log: Callable[[str], None] = lambda message: None) -> None:
    """Load the index, the embedder and the LLM now, so the first question is answered fast."""
    started = time.perf_counter()
    log("Loading the index and the models ...")
    files = assistant.index.files
    assistant.embedder.encode_queries(["warm up"])
    llm = assistant.llm
    for _ in llm.stream([{"role": "user", "content": "Hi"}], 1, 0.0):
        pass
    log(f"Ready in {time.perf_counter() - started:.1f} s: {len(files)} documents, LLM {llm.id}.")


def serve(
    assistant,
    options: UiOptions = UiOptions(),
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    auth: tuple[str, str] | None = None,
):
    """Build the app and serve it in background threads: (demo, URL). `demo.close()` stops it."""
    demo = build_app(assistant, options)
    return demo, launch(demo, host=host, port=port, auth=auth, options=options, prevent_thread_lock=True)


def launch(
    demo,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    auth: tuple[str, str] | None = None,
    options: UiOptions = UiOptions(),
    prevent_thread_lock: bool = False,
    quiet: bool = True,
) -> str:
    """Serve the app; its local URL. Styles and theme are given here (Gradio 6 takes them at launch)."""
    import gradio as gr

    theme = gr.themes.Soft(
        primary_hue="indigo",
        neutral_hue="slate",
        radius_size="lg",
        font=[
            "ui-sans-serif",
            "system-ui",
            "-apple-system",
            "Segoe UI",
            "Noto Sans",
            "Noto Sans CJK KR",
            "Apple SD Gothic Neo",
            "PingFang SC",
            "Microsoft YaHei",
            "sans-serif",
        ],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"],
    )
    try:
        demo.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE)
        _, url, _ = demo.launch(
            server_name=host,
            server_port=port,
            auth=SignInGuard(*auth) if auth else None,
            auth_message="Polyglot RAG: sign in to ask questions about the documents." if auth else None,
            max_file_size=options.max_upload_bytes,
            prevent_thread_lock=prevent_thread_lock,
            quiet=quiet,
            show_error=False,
            ssr_mode=False,
            share=False,
            inbrowser=False,
            footer_links=["api"],
            theme=theme,
            css=(UI_DIR / "style.css").read_text(encoding="utf-8"),
        )
    except OSError as error:
        raise RagError(
            f"cannot listen on {host}:{port} ({str(error).splitlines()[0]}); choose another --port"
        ) from None
    return url


# -- the app -------------------------------------------------------------------------------
def _clamp(value, low, high, kind):
    try:
        return min(high, max(low, kind(value)))
    except (TypeError, ValueError):
        return low


def _message_text(content) -> str:
    """A chat message's text: Gradio 6 gives a list of parts ({"type": "text", "text": ...})."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text") or "")
    if isinstance(content, list):
        return " ".join(_message_text(part) for part in content)
    return ""


def _error(message: object) -> str:
    return f'<span class="error">⚠ {render.md_escape(str(message))}</span>'


THINKING = '<span class="thinking">Searching the documents…</span>'
WRITING = '<span class="thinking">Reading the passages…</span>'
CURSOR = " ▍"


def build_app(assistant, options: UiOptions = UiOptions()):
    """The Gradio Blocks app; `launch` serves it."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    from rag.assistant import Done, Retrieved, Token, clean_question
    from rag.library import DOCUMENT_SUFFIXES
    from rag.scope import Scope, check_languages, language_codes, mentions, scope_choices, scope_of_choices

    kinds = ", ".join(DOCUMENT_SUFFIXES)

    settings = assistant.settings
    library = assistant.library
    sources_js = (UI_DIR / "sources.js").read_text(encoding="utf-8")

    def header_html() -> str:
        files = library.files
        chunks = sum(int(info.get("chunks", 0)) for info in files.values())
        llm = assistant.llm.id if settings.llm_url is None else settings.llm_url
        return render.header(
            options.title,
            [
                f"{len(files)} documents · {chunks} chunks",
                f"LLM {llm}",
                f"embedder {Path(settings.embedder_name).name}",
            ],
        )

    def documents_label() -> str:
        return f"Documents · {len(library.files)}"

    def documents_view() -> dict:
        files = library.files
        view = {
            docs_table: render.documents_table(files),
            header: header_html(),
            documents: gr.update(label=documents_label()),
        }
        if not options.read_only:
            view[to_remove] = gr.update(choices=sorted(files), value=None)
        view[scope_picker] = gr.update(choices=scope_choices(files))
        return view

    # -- chat ------------------------------------------------------------------------------
    # The conversation lives in server-side session state (`messages`, `turns`, `sections`):
    # Gradio reads State when an event runs, not when it is triggered, so a question asked
    # while another is still streaming (or being stopped) waits its turn and then sees the
    # whole conversation; the Chatbot only displays `messages`. Each update names only the
    # components it changes.
    def shown(chat: list[dict]) -> dict:
        return {chatbot: chat, messages: chat}

    def idle() -> dict:
        return {send: gr.update(visible=True), stop: gr.update(visible=False)}

    def respond(
        question, chat, turns_so_far, panel_sections, k_value, max_tokens_value, temperature_value, picked=None
    ):
        """Stream one answer into the chat and its sources into the panel, from the documents
        picked beside the question box and those `@mentioned` in it (all when none)."""
        chat = [dict(m) for m in (chat or [])]
        turns_so_far, panel_sections = list(turns_so_far or []), list(panel_sections or [])
        question = question if isinstance(question, str) else ""
        chat.append({"role": "user", "content": render.md_escape(" ".join(question.split())) or "…"})
        try:
            cleaned = clean_question(question)
        except RagError as error:
            chat.append({"role": "assistant", "content": _error(error)})
            yield {**shown(chat), box: "", **idle()}
            return
        chat.append({"role": "assistant", "content": THINKING})
        yield {
            **shown(chat),
            sources: render.sources_panel(panel_sections, render.pending_sources(cleaned, None)),
            box: "",
            send: gr.update(visible=False),
            stop: gr.update(visible=True),
        }
        finished = {turns: turns_so_far, sections: panel_sections, **idle()}
        stream = None
        try:
            asked, mentioned = mentions(cleaned, assistant.index.files)  # the rewrite sees no @file
            scope = scope_of_choices(picked) | mentioned
            rewrite = assistant.standalone_question([(t["standalone"], t["answer"]) for t in turns_so_far], asked)
            note = render.rewrite_note(rewrite.standalone) if rewrite.rewritten else ""
            if note:
                chat[-1]["content"] = note + THINKING
                yield {
                    **shown(chat),
                    sources: render.sources_panel(panel_sections, render.pending_sources(rewrite.standalone, None)),
                }
            stream = assistant.stream(
                rewrite.standalone,
                k=_clamp(k_value, *K_RANGE, int),
                max_tokens=_clamp(max_tokens_value, *MAX_TOKENS_RANGE, int),
                temperature=_clamp(temperature_value, *TEMPERATURE_RANGE, float),
                scope=scope,
            )
            pieces: list[str] = []
            for event in stream:
                if isinstance(event, Retrieved):
                    chat[-1]["content"] = note + WRITING
                    yield {
                        **shown(chat),
                        sources: render.sources_panel(
                            panel_sections, render.pending_sources(rewrite.standalone, event.hits)
                        ),
                    }
                elif isinstance(event, Token):
                    pieces.append(event.text)
                    chat[-1]["content"] = note + render.draft_markdown("".join(pieces)) + CURSOR
                    yield shown(chat)
                elif isinstance(event, Done):
                    answer = event.answer
                    turn = len(turns_so_far) + 1
                    chat[-1]["content"] = (
                        note + render.scope_note(answer.searched) + render.answer_message(answer, turn)
                    )
                    index = assistant.index
                    languages = {name: info.get("language", "") for name, info in index.files.items()}
                    cited = {c.file: index.paragraphs_of(c.file) for c in answer.citations}
                    panel_sections.append(
                        render.turn_sources(turn, rewrite.standalone, answer, cited, languages, answer.timings_ms)
                    )
                    turns_so_far.append(
                        {"question": cleaned, "standalone": rewrite.standalone, "answer": answer.text or ""}
                    )
                    yield {**shown(chat), sources: render.sources_panel(panel_sections), **finished}
        except RagError as error:
            chat[-1]["content"] = _error(error)
            yield {**shown(chat), sources: render.sources_panel(panel_sections), **finished}
        except Exception as error:  # keep serving; the details go to the server log only
            traceback.print_exc()
            chat[-1]["content"] = _error(f"unexpected error ({type(error).__name__}); see the server log")
            yield {**shown(chat), sources: render.sources_panel(panel_sections), **finished}
        finally:
            if stream is not None:
                stream.close()  # on Stop: gives the LLM back as soon as the current step ends

    def stopped(chat, panel_sections):
        chat = [dict(m) for m in (chat or [])]
        if chat and chat[-1].get("role") == "assistant":
            text = _message_text(chat[-1].get("content"))
            for transient in (CURSOR, THINKING, WRITING):
                text = text.replace(transient, "")
            chat[-1]["content"] = text + ' <span class="stopped">(stopped)</span>'
        return {**shown(chat), sources: render.sources_panel(panel_sections or []), **idle()}

    def new_chat():
        return {**shown([]), sources: render.sources_panel([]), turns: [], sections: [], box: "", **idle()}

    def pick_example(event: gr.SelectData):
        value = event.value
        return value.get("text", "") if isinstance(value, dict) else str(value or "")

    # Annotations are strings here (postponed), and gradio is not a module global: resolve it for Gradio.
    pick_example.__annotations__["event"] = gr.SelectData

    # -- documents ---------------------------------------------------------------------------
    def add_files(files, replace_existing, progress=gr.Progress()):  # noqa: B008 -- Gradio's own idiom
        """Add uploaded documents to the documents folder and index them."""
        paths = [f if isinstance(f, str) else getattr(f, "name", str(f)) for f in (files or [])]
        if not paths:
            return {
                **documents_view(),
                docs_status: render.status("warning", f"Choose {kinds} files to add."),
                upload: None,
            }
        progress(0, desc="Reading the documents")
        result = library.add(
            [(Path(path).name, Path(path)) for path in paths],
            replace=bool(replace_existing),
            max_bytes=options.max_upload_bytes,
            progress=lambda stage, done, total: progress(
                (done, total or None),
                desc=f"{stage} the documents",
                unit={"Reading": "files", "Chunking": "characters"}.get(stage, "chunks"),
            ),
        )
        lines = [render.status("error", f"Rejected: {why}") for _, why in result.rejected]
        if result.failed:
            lines.insert(0, render.status("error", f"Not added: {result.failed}"))
        for name in result.added:
            if name in result.notes:
                lines.insert(0, render.status("warning", f"{name}: {result.notes[name]}"))
            else:
                info = library.files.get(name, {})
                counts = (
                    f"{render.plural(info.get('paragraphs', 0), 'paragraph')}, "
                    f"{render.plural(info.get('chunks', 0), 'chunk')}"
                )
                lines.insert(0, render.status("ok", f"Added {name} ({counts})"))
        return {**documents_view(), docs_status: "".join(lines), upload: None}

    def remove_file(name):
        """Remove one indexed document from the documents folder and the index."""
        try:
            library.remove(name)
            message = render.status("ok", f"Removed {name}")
        except RagError as error:
            message = render.status("error", str(error))
        return {**documents_view(), docs_status: message}

    # -- API -----------------------------------------------------------------------------------
    def ask(question: str, only: list[str] | None = None, languages: list[str] | None = None) -> dict:
        """Answer a question from the documents: the `ask --json` object (answer, citations, retrieved,
        searched, timings_ms); `only` (files, folders, globs) and `languages` (codes) limit the documents searched."""
        try:
            codes = language_codes(",".join(languages or []))
            check_languages(codes)
            return assistant.ask(question, scope=Scope(tuple(only or ()), codes)).to_json()
        except RagError as error:
            raise gr.Error(render.escape(str(error)), print_exception=False) from None

    # -- layout --------------------------------------------------------------------------------
    with gr.Blocks(title=options.title, delete_cache=(3600, 3600)) as demo:
        messages = gr.State([])  # the chat as displayed
        turns = gr.State([])  # answered questions: question, standalone question, answer text
        sections = gr.State([])  # Sources panel HTML of each answered question
        header = gr.HTML(header_html(), elem_id="app-header", js_on_load=None)
        with gr.Row(equal_height=False, elem_id="main-row"):
            with gr.Column(scale=7, min_width=380, elem_id="chat-column"):
                chatbot = gr.Chatbot(
                    elem_id="chat",
                    show_label=False,
                    height="64vh",
                    min_height=380,
                    latex_delimiters=[],
                    sanitize_html=True,
                    allow_tags=False,
                    feedback_options=None,
                    buttons=["copy"],
                    placeholder="<div class='placeholder'><b>Ask about your documents</b><br>"
                    "in English, 한국어, 中文 or Bahasa Indonesia.</div>",
                    examples=[{"text": text, "display_text": f"{language} · {text}"} for language, text in EXAMPLES],
                )
                with gr.Row(elem_id="composer"):
                    # The label is for screen readers: Gradio keeps it in the page, visually hidden.
                    box = gr.Textbox(
                        label="Question",
                        show_label=False,
                        container=False,
                        scale=8,
                        lines=1,
                        max_lines=6,
                        autofocus=True,
                        elem_id="question",
                        placeholder="Ask a question… (@file.pdf in it searches that document only)",
                    )
                    send = gr.Button("Ask", variant="primary", scale=1, min_width=90, elem_id="send")
                    stop = gr.Button("Stop", variant="stop", scale=1, min_width=90, visible=False, elem_id="stop")
                with gr.Row(elem_id="chat-tools", equal_height=False):
                    scope_picker = gr.Dropdown(
                        choices=scope_choices(library.files),
                        value=[],
                        multiselect=True,
                        label="Search only (empty: all documents)",
                        scale=4,
                        elem_id="scope",
                    )
                    clear = gr.Button("New chat", size="sm", variant="secondary", elem_id="new-chat")
                with gr.Accordion("Settings", open=False, elem_id="settings"):
                    with gr.Row():
                        k = gr.Slider(*K_RANGE, value=min(settings.k, K_RANGE[1]), step=1, label="Top-k passages")
                        max_tokens = gr.Slider(
                            *MAX_TOKENS_RANGE,
                            step=16,
                            label="Max answer tokens",
                            value=_clamp(settings.max_tokens, *MAX_TOKENS_RANGE, int),
                        )
                        temperature = gr.Slider(
                            *TEMPERATURE_RANGE,
                            step=0.05,
                            label="Temperature",
                            value=_clamp(settings.temperature, *TEMPERATURE_RANGE, float),
                        )
                    gr.HTML(
                        render.facts(
                            [
                                ("Model in use", settings.llm_url or Path(settings.llm_path).name),
                                ("Embedder", Path(settings.embedder_name).name),
                                ("Retrieval", settings.retrieval),
                                ("Documents", str(settings.docs_dir)),
                                ("Index", settings.index_location),
                            ]
                        ),
                        elem_id="model-info",
                        js_on_load=None,
                    )
            with gr.Column(scale=5, min_width=320, elem_id="side-column"):
                sources = gr.HTML(
                    render.sources_panel([]), elem_id="sources", js_on_load=sources_js, max_height=760, autoscroll=False
                )
                if not options.read_only:  # in view: adding documents is the first thing a new user does
                    upload = gr.File(
                        label=f"Add documents: {kinds} (up to {options.max_upload_bytes / 2**20:g} MB)",
                        file_count="multiple",
                        file_types=list(DOCUMENT_SUFFIXES),
                        elem_id="upload",
                        height=140,
                    )
                    replace = gr.Checkbox(label="Replace files with the same name", value=False, elem_id="replace")
                    docs_status = gr.HTML("", elem_id="docs-status", js_on_load=None)
                with gr.Accordion(documents_label(), open=False, elem_id="documents") as documents:
                    docs_table = gr.HTML(render.documents_table(library.files), elem_id="docs-table", js_on_load=None)
                    if not options.read_only:
                        with gr.Row(equal_height=False, elem_id="remove-row"):
                            to_remove = gr.Dropdown(
                                choices=sorted(library.files),
                                value=None,
                                label="Remove a document",
                                scale=4,
                                elem_id="remove-choice",
                                allow_custom_value=True,
                            )  # checked by the library
                            remove = gr.Button(
                                "Remove", variant="stop", size="sm", scale=1, min_width=80, elem_id="remove"
                            )

        # -- events --------------------------------------------------------------------------
        chat_inputs = [box, messages, turns, sections, k, max_tokens, temperature, scope_picker]
        chat_outputs = [chatbot, messages, sources, turns, sections, box, send, stop]
        asking = gr.on(
            [box.submit, send.click],
            respond,
            chat_inputs,
            chat_outputs,
            concurrency_id=LLM_QUEUE,
            trigger_mode="multiple",
            api_visibility="private",
            show_progress="hidden",
        )
        from_example = chatbot.example_select(pick_example, None, box, queue=False, api_visibility="private")
        asking_example = from_example.then(
            respond,
            chat_inputs,
            chat_outputs,
            concurrency_id=LLM_QUEUE,
            api_visibility="private",
            show_progress="hidden",
        )
        stop.click(
            stopped,
            [messages, sections],
            [chatbot, messages, sources, send, stop],
            cancels=[asking, asking_example],
            queue=False,
            api_visibility="private",
        )
        for clearing in (clear.click, chatbot.clear):
            clearing(
                new_chat, None, chat_outputs, cancels=[asking, asking_example], queue=False, api_visibility="private"
            )
        docs_outputs = [docs_table, header, documents, scope_picker]
        if not options.read_only:
            docs_outputs.append(to_remove)
            upload.upload(
                add_files,
                [upload, replace],
                [*docs_outputs, docs_status, upload],
                concurrency_id=LLM_QUEUE,
                api_name="upload_documents",
                show_progress="full",
            )
            remove.click(
                remove_file,
                to_remove,
                [*docs_outputs, docs_status],
                concurrency_id=LLM_QUEUE,
                api_name="remove_document",
            )
        demo.load(documents_view, None, docs_outputs, queue=False, api_visibility="private")
        gr.api(ask, api_name="ask", concurrency_id=LLM_QUEUE, concurrency_limit=1)
    return demo
