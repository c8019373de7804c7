"""The chat in the browser: `rag ui` starts a Gradio app built from one Assistant.

The page streams answers, links each [n] marker to the passage it cites (file, paragraph,
supporting sentence highlighted, context on click), lists and manages the documents, and
offers the pipeline to scripts as the `/ask` API endpoint (the `ask --json` object) and, on
the same port, as the OpenAI-compatible API of ui/api.py.
Everything goes through the Assistant's public API; gradio is imported only in here.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rag.cli import Command
from rag.errors import RagError
from rag.settings import add_serving_flags, add_settings_flags, is_local_host, settings_from_args

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
WATCH_REFRESH_SECONDS = 1.0  # how often an open page looks at the folder watcher's state

# One starter question per language, answerable from the seed documents.
EXAMPLES = [
    ("English", "In which year was OpenAI founded, according to the WSJ-based report?"),
    ("한국어", "OpenAI는 메타의 '초지능' 팀에 최소 몇 명의 연구원을 잃었나요?"),
    ("中文", "韩文总结说,OpenAI 内部几乎不用邮件,沟通全靠什么工具?"),
    ("Indonesia", "Sebelum bekerja di OpenAI, perusahaan apa yang pernah ikut didirikan Calvin French-Owen?"),
]


# The Soft theme's grey text (slate-400), indigo labels and its primary button (white on
# indigo-500) are below WCAG AA's 4.5:1; these are the darker (lighter, in dark mode) steps
# of the same hues. ui/style.css follows the same rule for the page's own elements.
AA_COLOURS = {
    "body_text_color_subdued": "*neutral_600",
    "body_text_color_subdued_dark": "*neutral_300",
    "block_label_text_color": "*primary_700",
    "block_title_text_color": "*primary_700",
    "button_primary_background_fill": "*primary_600",
    "button_primary_background_fill_hover": "*primary_700",
    "color_accent": "*primary_600",
    "input_placeholder_color": "*neutral_500",
    "input_placeholder_color_dark": "*neutral_400",
}


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
    parser.add_argument(
        "--no-watch", action="store_true", help="do not index files added, changed or removed in the documents folder"
    )
    add_settings_flags(parser, generation=True)
    add_serving_flags(parser)


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
    from rag.watch import FolderWatcher, announcer

    from .api import PREFIX, api_access

    auth = parse_auth(args.auth or os.environ.get("RAG_UI_AUTH"))
    how = exposure(args.host, auth, args.no_auth)
    settings = settings_from_args(args)
    api, api_how = api_access(args.host, settings.api_key, chat_auth=auth is not None, no_auth=args.no_auth)
    if not 0 < args.max_upload_mb <= MAX_UPLOAD_MB:
        raise RagError(f"--max-upload-mb must be more than 0 and at most {MAX_UPLOAD_MB}")
    if not 0 < args.port < 65536:
        raise RagError(f"--port must be between 1 and 65535, not {args.port}")
    assistant = Assistant(settings)
    log = lambda message: print(message, file=sys.stderr, flush=True)
    warm_up(assistant, log)
    watcher = None if args.no_watch else FolderWatcher(assistant, on_change=announcer(log), log=log).start()
    log(f"Conversations are saved in {assistant.settings.chats_path} (`rag chats` lists and exports them).")
    options = UiOptions(max_upload_bytes=int(args.max_upload_mb * 2**20), read_only=args.read_only)
    demo, url = serve(assistant, options, host=args.host, port=args.port, auth=auth, api=api, watcher=watcher)
    print(f"Chat running at {url} (listening on {args.host}:{args.port}, {how}). Press Ctrl+C to stop.", flush=True)
    print(f"OpenAI-compatible API at {url.rstrip('/')}{PREFIX} ({api_how}).", flush=True)
    if watcher is not None:
        print(f"Watching {settings.docs_dir} for added, changed and removed files.", flush=True)
    try:
        demo.block_thread()
    finally:
        if watcher is not None:
            watcher.stop()
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
    api=None,
    watcher=None,
):
    """Build the app and serve it in background threads: (demo, URL). `demo.close()` stops it.
    The OpenAI-compatible API (ui/api.py) is served on the same port, to whom `api` (an
    ApiAccess) allows: by default this machine, when the chat asks no sign-in. With a
    FolderWatcher, the page shows its indexing and refreshes the documents list after it."""
    from .api import ApiAccess, mount_on

    demo = build_app(assistant, options, watcher)
    url = launch(demo, host=host, port=port, auth=auth, options=options, prevent_thread_lock=True)
    mount_on(demo.app, assistant, api or ApiAccess(None, open=is_local_host(host) and not auth))
    return demo, url


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
    ).set(**AA_COLOURS)
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
def build_app(assistant, options: UiOptions = UiOptions(), watcher=None):
    """The Gradio Blocks app; `launch` serves it."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    from rag.history import LOCAL, History
    from rag.library import DOCUMENT_SUFFIXES
    from rag.scope import Scope, check_languages, language_codes, scope_choices

    from .chat import K_RANGE, MAX_TOKENS_RANGE, TEMPERATURE_RANGE, Chat, ChatState, View, clamp

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
    # The conversation lives in server-side session state (`conversation`, a ChatState):
    # Gradio reads State when an event runs, not when it is triggered, so a question asked
    # while another is still streaming (or being stopped) waits its turn and then sees the
    # whole conversation. Each update names only the components it changes. Conversations are
    # saved as they happen (rag/history.py); each signed-in user has their own (`owner`).
    chat = Chat(assistant, History(settings.chats_path))
    exports = Path(tempfile.mkdtemp(prefix="rag-chat-exports-"))

    def owner(request) -> str:
        return (getattr(request, "username", None) or LOCAL) if request is not None else LOCAL

    def shown(view: View) -> dict:
        update = {chatbot: view.state.messages, conversation: view.state}
        if view.sources is not None:
            update[sources] = view.sources
        if view.answering is not None:
            update[send] = gr.update(visible=not view.answering)
            update[stop] = gr.update(visible=view.answering)
        if view.clear_question:
            update[box] = ""
        return update

    def respond(question, state, k_value, max_tokens_value, temperature_value, picked, request: gr.Request):
        """Stream one answer into the chat and its sources into the panel, from the documents
        picked beside the question box and those `@mentioned` in it (all when none)."""
        answering = chat.respond(state, question, k_value, max_tokens_value, temperature_value, owner(request), picked)
        # Closed on Stop, so that the Assistant's stream is closed at once (see Chat.respond).
        with contextlib.closing(answering) as views:
            for view in views:
                yield shown(view)

    def stopped(state):
        return shown(chat.stop(state))

    def new_chat(state):
        return shown(chat.new(state))

    def sidebar(state, request: gr.Request) -> dict:
        """The saved conversations, newest first, the open one selected, with its title and exports."""
        user = owner(request)
        listed = chat.conversations(user)
        current = state.conversation if state is not None else None
        files = chat.export(state, exports, user) if current in {c.id for c in listed} else None
        return {
            chat_list: gr.update(choices=[(c.label, str(c.id)) for c in listed], value=str(current) if files else None),
            chat_title: next((c.title for c in listed if c.id == current), ""),
            export_md: gr.update(value=files[0] if files else None, interactive=bool(files)),
            export_json: gr.update(value=files[1] if files else None, interactive=bool(files)),
            chat_status: "",
            confirm_delete: gr.update(visible=False),
        }

    def sidebar_after_delete(state, request: gr.Request) -> dict:
        """The sidebar without the conversation just deleted, "Deleted" still said."""
        return {key: value for key, value in sidebar(state, request).items() if key is not chat_status}

    def open_conversation(choice, state, request: gr.Request):
        try:
            return shown(chat.open(int(choice), state, owner(request)))
        except (TypeError, ValueError):
            return {chat_status: render.status("error", f"there is no conversation {choice!r}")}
        except RagError as error:
            return {chat_status: render.status("error", str(error))}

    def rename_conversation(title, state, request: gr.Request):
        try:
            chat.rename(state, title, owner(request))
        except RagError as error:
            return {chat_status: render.status("error", str(error))}
        return sidebar(state, request)

    def ask_to_delete(state):
        """Deleting is not undone: it asks first, with a second button."""
        if state is None or state.conversation is None:
            return {chat_status: render.status("error", "there is no saved conversation to delete")}
        return {
            chat_status: render.status("warning", "Delete this conversation? This cannot be undone."),
            confirm_delete: gr.update(visible=True),
        }

    def delete_conversation(state, request: gr.Request):
        try:
            view = chat.delete(state, owner(request))
        except RagError as error:
            return {chat_status: render.status("error", str(error)), confirm_delete: gr.update(visible=False)}
        return {**shown(view), chat_status: render.status("ok", "Deleted"), confirm_delete: gr.update(visible=False)}

    # Annotations are strings here (postponed), and gradio is not a module global: resolve them for Gradio.
    for handler in (
        respond,
        sidebar,
        sidebar_after_delete,
        open_conversation,
        rename_conversation,
        delete_conversation,
    ):
        handler.__annotations__["request"] = gr.Request

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
        """Take one indexed document out of the index; its file stays in the documents folder."""
        try:
            library.remove(name)
        except RagError as error:
            return {**documents_view(), docs_status: render.status("error", str(error)), **removal_offer(None)}
        message = render.status("ok", f"Removed {name} from the index; the file stays in the documents folder")
        return {**documents_view(), docs_status: message, **removal_offer(name)}

    def removal_offer(name) -> dict:
        """After a removal: Undo, and for a file the chat uploaded, deleting it (after a confirmation)."""
        deletable = bool(name) and library.uploaded_by_chat(name)
        return {
            removed: name or "",
            removed_row: gr.update(visible=bool(name)),
            delete_ask: gr.update(visible=deletable),
            confirm_file_row: gr.update(visible=False),
        }

    def undo_remove(name):
        """Bring the last removed document back into the index."""
        try:
            library.include([name] if name and isinstance(name, str) else [])
            message = render.status("ok", f"{name} is back in the index")
        except RagError as error:
            message = render.status("error", str(error))
        return {**documents_view(), docs_status: message, **removal_offer(None)}

    def ask_delete(name):
        return {
            confirm_file_row: gr.update(visible=True),
            confirm_file_text: render.delete_question(name or ""),
            confirm_file_delete: gr.update(value=f"Delete {name}"),
        }

    def delete_file(name, confirmation):
        """Delete a file the chat uploaded from the documents folder; `confirmation` repeats its name."""
        try:
            library.delete(name, confirm=confirmation)
            message = render.status("ok", f"Deleted the file {name}")
        except RagError as error:
            message = render.status("error", str(error))
        return {**documents_view(), docs_status: message, **removal_offer(None)}

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
        conversation = gr.State(ChatState())
        header = gr.HTML(header_html(), elem_id="app-header", js_on_load=None)
        with gr.Sidebar(label="Conversations", open=True, width=300, elem_id="conversations"):
            gr.HTML('<div class="side-title">Conversations</div>', js_on_load=None)
            chat_list = gr.Radio(
                choices=[], value=None, show_label=False, container=False, elem_id="chat-list", label="Conversations"
            )
            with gr.Group(elem_id="chat-manage"):
                chat_title = gr.Textbox(label="Title", max_lines=1, elem_id="chat-title", placeholder="Ask first…")
                with gr.Row():
                    rename_chat = gr.Button("Rename", size="sm", elem_id="rename-chat", min_width=60)
                    delete_chat = gr.Button("Delete", size="sm", variant="stop", elem_id="delete-chat", min_width=60)
                confirm_delete = gr.Button(
                    "Yes, delete it", size="sm", variant="stop", visible=False, elem_id="confirm-delete-chat"
                )
                with gr.Row():
                    export_md = gr.DownloadButton(
                        "Markdown", size="sm", elem_id="export-md", interactive=False, min_width=60
                    )
                    export_json = gr.DownloadButton(
                        "JSON", size="sm", elem_id="export-json", interactive=False, min_width=60
                    )
            chat_status = gr.HTML("", elem_id="chat-status", js_on_load=None)
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
                            value=clamp(settings.max_tokens, *MAX_TOKENS_RANGE, int),
                        )
                        temperature = gr.Slider(
                            *TEMPERATURE_RANGE,
                            step=0.05,
                            label="Temperature",
                            value=clamp(settings.temperature, *TEMPERATURE_RANGE, float),
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
                if watcher is not None:  # the documents folder, indexed as it changes (rag/watch.py)
                    watch_status = gr.HTML("", elem_id="watch-status", js_on_load=None)
                    watch_seen = gr.State(watcher.state.version)
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
                        # The last document removed, for Undo; a (hidden) component, so the API takes it too.
                        removed = gr.Textbox(visible=False, elem_id="removed-name")
                        with gr.Row(visible=False, elem_id="removed-row") as removed_row:
                            undo = gr.Button("Undo", size="sm", variant="secondary", elem_id="undo-remove")
                            delete_ask = gr.Button(
                                "Delete the file…", size="sm", variant="secondary", elem_id="delete-file"
                            )
                        with gr.Column(visible=False, elem_id="confirm-row") as confirm_file_row:
                            confirm_file_text = gr.HTML("", elem_id="confirm-text", js_on_load=None)
                            with gr.Row():
                                confirm_file_delete = gr.Button(
                                    "Delete", variant="stop", size="sm", elem_id="confirm-delete"
                                )
                                cancel_file_delete = gr.Button(
                                    "Cancel", size="sm", variant="secondary", elem_id="cancel-delete"
                                )

        # -- events --------------------------------------------------------------------------
        chat_inputs = [box, conversation, k, max_tokens, temperature, scope_picker]
        chat_outputs = [chatbot, conversation, sources, box, send, stop]
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
        stopping = stop.click(
            stopped,
            conversation,
            [chatbot, conversation, sources, send, stop],
            cancels=[asking, asking_example],
            queue=False,
            api_visibility="private",
        )
        sidebar_outputs = [chat_list, chat_title, export_md, export_json, chat_status, confirm_delete]
        private = {"queue": False, "api_visibility": "private"}
        for clearing in (clear.click, chatbot.clear):
            clearing(new_chat, conversation, chat_outputs, cancels=[asking, asking_example], **private).then(
                sidebar, conversation, sidebar_outputs, **private
            )
        # After an answer (or a stop), the sidebar lists the conversation and offers its exports.
        for answered in (asking, asking_example, stopping):
            answered.then(sidebar, conversation, sidebar_outputs, **private)
        chat_list.input(
            open_conversation,
            [chat_list, conversation],
            [*chat_outputs, chat_status],
            cancels=[asking, asking_example],
            **private,
        ).then(sidebar, conversation, sidebar_outputs, **private)
        rename_chat.click(rename_conversation, [chat_title, conversation], sidebar_outputs, **private)
        chat_title.submit(rename_conversation, [chat_title, conversation], sidebar_outputs, **private)
        delete_chat.click(ask_to_delete, conversation, [chat_status, confirm_delete], **private)
        confirm_delete.click(
            delete_conversation, conversation, [*chat_outputs, chat_status, confirm_delete], **private
        ).then(sidebar_after_delete, conversation, [o for o in sidebar_outputs if o is not chat_status], **private)
        demo.load(sidebar, conversation, sidebar_outputs, **private)
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
                show_progress_on=upload,  # on every output, its bar covered the page title
            )
            offer = [removed, removed_row, delete_ask, confirm_file_row]
            remove.click(
                remove_file,
                to_remove,
                [*docs_outputs, docs_status, *offer],
                concurrency_id=LLM_QUEUE,
                api_name="remove_document",
            )
            undo.click(undo_remove, removed, [*docs_outputs, docs_status, *offer], concurrency_id=LLM_QUEUE)
            delete_ask.click(
                ask_delete,
                removed,
                [confirm_file_row, confirm_file_text, confirm_file_delete],
                queue=False,
                api_visibility="private",
            )
            cancel_file_delete.click(
                lambda: gr.update(visible=False), None, confirm_file_row, queue=False, api_visibility="private"
            )
            # The API asks for the name twice, as the confirmation names the file.
            confirm_file_delete.click(
                delete_file,
                [removed, removed],
                [*docs_outputs, docs_status, *offer],
                concurrency_id=LLM_QUEUE,
                api_name="delete_document",
            )
        demo.load(documents_view, None, docs_outputs, queue=False, api_visibility="private", show_progress="hidden")
        if watcher is not None:

            def watched(seen):
                """The watcher's line; the documents list again once an update has finished."""
                state = watcher.state
                kind = "error" if state.error else "warning" if state.indexing or state.pending else "ok"
                view = {
                    watch_status: render.status(kind, state.message) if state.message else "",
                    watch_seen: state.version,
                }
                return {**view, **documents_view()} if state.version != seen else view

            gr.Timer(WATCH_REFRESH_SECONDS).tick(
                watched,
                watch_seen,
                [watch_status, watch_seen, *docs_outputs],
                queue=False,
                api_visibility="private",
                show_progress="hidden",
            )
        gr.api(ask, api_name="ask", concurrency_id=LLM_QUEUE, concurrency_limit=1)
    weakref.finalize(demo, shutil.rmtree, exports, ignore_errors=True)  # the export files made for downloads
    return demo
