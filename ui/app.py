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
from types import SimpleNamespace

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
# The page's logic lives in plain classes (ui/chat.py: a turn's streaming and Stop, and the
# conversations sidebar; ui/documents.py: the documents panel); build_app lays the page out
# and wires each event to one of their methods, turning what it returns into component
# updates. `page` holds the components by name.
def build_app(assistant, options: UiOptions = UiOptions(), watcher=None):
    """The Gradio Blocks app; `launch` serves it. With a FolderWatcher, the page shows its
    indexing and refreshes the documents list after it."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    from rag.history import History

    from .chat import Chat, ChatState, Sidebar
    from .documents import Documents

    # Conversations are saved as they happen (rag/history.py); each signed-in user has their own.
    chat = Chat(assistant, History(assistant.settings.chats_path))
    exports = Path(tempfile.mkdtemp(prefix="rag-chat-exports-"))
    documents = Documents(assistant, options.title, options.max_upload_bytes, watcher)
    with gr.Blocks(title=options.title, delete_cache=(3600, 3600)) as demo:
        # The conversation lives in server-side session state (a ChatState): Gradio reads State
        # when an event runs, not when it is triggered, so a question asked while another is
        # still streaming (or being stopped) waits its turn and then sees the whole conversation.
        page = SimpleNamespace(demo=demo, conversation=gr.State(ChatState()))
        page.header = gr.HTML(documents.header(), elem_id="app-header", js_on_load=None)
        _lay_out_sidebar(gr, page)
        with gr.Row(equal_height=False, elem_id="main-row"):
            _lay_out_chat(gr, page, assistant.settings, documents.listing())
            _lay_out_documents(gr, page, documents, options)
        sidebar = Sidebar(chat, exports)
        follow = _sidebar_follower(gr, page, sidebar)
        answering = _wire_chat(gr, page, chat, follow)
        _wire_sidebar(gr, page, sidebar, answering, follow)
        _wire_documents(gr, page, documents, options.read_only)
        gr.api(_ask_endpoint(gr, assistant), api_name="ask", concurrency_id=LLM_QUEUE, concurrency_limit=1)
    weakref.finalize(demo, shutil.rmtree, exports, ignore_errors=True)  # the export files made for downloads
    return demo


def _owner(request) -> str:
    """The signed-in user of a request ("" without sign-in): whose conversations these are."""
    from rag.history import LOCAL

    return (getattr(request, "username", None) or LOCAL) if request is not None else LOCAL


def _takes_request(gr, *handlers) -> None:
    """Annotations are strings here (postponed), and gradio is not a module global: resolve a
    handler's `request` for Gradio, which then passes the request."""
    for handler in handlers:
        handler.__annotations__["request"] = gr.Request


# -- layout --------------------------------------------------------------------------------
def _lay_out_sidebar(gr, page) -> None:
    """The saved conversations: the list, the open one's title, deleting and exporting it."""
    with gr.Sidebar(label="Conversations", open=True, width=300, elem_id="conversations"):
        gr.HTML('<div class="side-title">Conversations</div>', js_on_load=None)
        page.chat_list = gr.Radio(
            choices=[], value=None, show_label=False, container=False, elem_id="chat-list", label="Conversations"
        )
        with gr.Group(elem_id="chat-manage"):
            page.chat_title = gr.Textbox(label="Title", max_lines=1, elem_id="chat-title", placeholder="Ask first…")
            with gr.Row():
                page.rename_chat = gr.Button("Rename", size="sm", elem_id="rename-chat", min_width=60)
                page.delete_chat = gr.Button("Delete", size="sm", variant="stop", elem_id="delete-chat", min_width=60)
            page.confirm_delete = gr.Button(
                "Yes, delete it", size="sm", variant="stop", visible=False, elem_id="confirm-delete-chat"
            )
            with gr.Row():
                page.export_md = gr.DownloadButton(
                    "Markdown", size="sm", elem_id="export-md", interactive=False, min_width=60
                )
                page.export_json = gr.DownloadButton(
                    "JSON", size="sm", elem_id="export-json", interactive=False, min_width=60
                )
        page.chat_status = gr.HTML("", elem_id="chat-status", js_on_load=None)


def _lay_out_chat(gr, page, settings, listing) -> None:
    """The chat column: the conversation, the question box, the scope picker, the settings."""
    from .chat import K_RANGE, MAX_TOKENS_RANGE, TEMPERATURE_RANGE, clamp

    with gr.Column(scale=7, min_width=380, elem_id="chat-column"):
        page.chatbot = gr.Chatbot(
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
            page.box = gr.Textbox(
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
            page.send = gr.Button("Ask", variant="primary", scale=1, min_width=90, elem_id="send")
            page.stop = gr.Button("Stop", variant="stop", scale=1, min_width=90, visible=False, elem_id="stop")
        with gr.Row(elem_id="chat-tools", equal_height=False):
            page.scope_picker = gr.Dropdown(
                choices=listing.scope,
                value=[],
                multiselect=True,
                label="Search only (empty: all documents)",
                scale=4,
                elem_id="scope",
            )
            page.clear = gr.Button("New chat", size="sm", variant="secondary", elem_id="new-chat")
        with gr.Accordion("Settings", open=False, elem_id="settings"):
            with gr.Row():
                page.k = gr.Slider(*K_RANGE, value=min(settings.k, K_RANGE[1]), step=1, label="Top-k passages")
                page.max_tokens = gr.Slider(
                    *MAX_TOKENS_RANGE,
                    step=16,
                    label="Max answer tokens",
                    value=clamp(settings.max_tokens, *MAX_TOKENS_RANGE, int),
                )
                page.temperature = gr.Slider(
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


def _lay_out_documents(gr, page, documents, options: UiOptions) -> None:
    """The side column: the Sources panel, adding documents, the watcher's line, the documents
    list with Remove, Undo and deleting an upload."""
    from rag.library import DOCUMENT_SUFFIXES

    from .documents import KINDS

    listing = documents.listing()
    with gr.Column(scale=5, min_width=320, elem_id="side-column"):
        page.sources = gr.HTML(
            render.sources_panel([]),
            elem_id="sources",
            js_on_load=(UI_DIR / "sources.js").read_text(encoding="utf-8"),
            max_height=760,
            autoscroll=False,
        )
        if not options.read_only:  # in view: adding documents is the first thing a new user does
            page.upload = gr.File(
                label=f"Add documents: {KINDS} (up to {options.max_upload_bytes / 2**20:g} MB)",
                file_count="multiple",
                file_types=list(DOCUMENT_SUFFIXES),
                elem_id="upload",
                height=140,
            )
            page.replace = gr.Checkbox(label="Replace files with the same name", value=False, elem_id="replace")
            page.docs_status = gr.HTML("", elem_id="docs-status", js_on_load=None)
        if documents.watcher is not None:  # the documents folder, indexed as it changes (rag/watch.py)
            page.watch_status = gr.HTML("", elem_id="watch-status", js_on_load=None)
            page.watch_seen = gr.State(documents.watcher.state.version)
        with gr.Accordion(listing.label, open=False, elem_id="documents") as page.documents:
            page.docs_table = gr.HTML(listing.table, elem_id="docs-table", js_on_load=None)
            if not options.read_only:
                _lay_out_removal(gr, page, listing)


def _lay_out_removal(gr, page, listing) -> None:
    """Remove a document; then Undo, or delete the file (an upload), after a confirmation."""
    with gr.Row(equal_height=False, elem_id="remove-row"):
        page.to_remove = gr.Dropdown(
            choices=list(listing.names),
            value=None,
            label="Remove a document",
            scale=4,
            elem_id="remove-choice",
            allow_custom_value=True,
        )  # checked by the library
        page.remove = gr.Button("Remove", variant="stop", size="sm", scale=1, min_width=80, elem_id="remove")
    # The last document removed, for Undo; a (hidden) component, so the API takes it too.
    page.removed = gr.Textbox(visible=False, elem_id="removed-name")
    with gr.Row(visible=False, elem_id="removed-row") as page.removed_row:
        page.undo = gr.Button("Undo", size="sm", variant="secondary", elem_id="undo-remove")
        page.delete_ask = gr.Button("Delete the file…", size="sm", variant="secondary", elem_id="delete-file")
    with gr.Column(visible=False, elem_id="confirm-row") as page.confirm_file_row:
        page.confirm_file_text = gr.HTML("", elem_id="confirm-text", js_on_load=None)
        with gr.Row():
            page.confirm_file_delete = gr.Button("Delete", variant="stop", size="sm", elem_id="confirm-delete")
            page.cancel_file_delete = gr.Button("Cancel", size="sm", variant="secondary", elem_id="cancel-delete")


# -- events --------------------------------------------------------------------------------
# Each update names only the components it changes.
def _chat_updates(gr, page, view) -> dict:
    """A ui.chat.View as component updates."""
    update = {page.chatbot: view.state.messages, page.conversation: view.state}
    if view.sources is not None:
        update[page.sources] = view.sources
    if view.answering is not None:
        update[page.send] = gr.update(visible=not view.answering)
        update[page.stop] = gr.update(visible=view.answering)
    if view.clear_question:
        update[page.box] = ""
    return update


def _wire_chat(gr, page, chat, follow) -> list:
    """Asking (typed or a starter question), Stop and New chat, each `follow`ed by the sidebar;
    the events that answer (asking, asking a starter question), which others cancel."""
    shown = lambda view: _chat_updates(gr, page, view)

    def respond(question, state, k_value, max_tokens_value, temperature_value, picked, request):
        """Stream one answer into the chat and its sources into the panel, from the documents
        picked beside the question box and those `@mentioned` in it (all when none)."""
        answering = chat.respond(state, question, k_value, max_tokens_value, temperature_value, _owner(request), picked)
        # Closed on Stop, so that the Assistant's stream is closed at once (see Chat.respond).
        with contextlib.closing(answering) as views:
            for view in views:
                yield shown(view)

    def pick_example(event):
        value = event.value
        return value.get("text", "") if isinstance(value, dict) else str(value or "")

    def stopped(state):
        return shown(chat.stop(state))

    def stopped_again(state):
        view = chat.after_stop(state)
        return {} if view is None else shown(view)

    def new_chat(state):
        return shown(chat.new(state))

    _takes_request(gr, respond)
    pick_example.__annotations__["event"] = gr.SelectData  # as for `request`, resolved for Gradio
    inputs = [page.box, page.conversation, page.k, page.max_tokens, page.temperature, page.scope_picker]
    outputs = page.chat_outputs = [page.chatbot, page.conversation, page.sources, page.box, page.send, page.stop]
    queued = {"concurrency_id": LLM_QUEUE, "api_visibility": "private", "show_progress": "hidden"}
    asking = gr.on([page.box.submit, page.send.click], respond, inputs, outputs, trigger_mode="multiple", **queued)
    from_example = page.chatbot.example_select(pick_example, None, page.box, queue=False, api_visibility="private")
    asking_example = from_example.then(respond, inputs, outputs, **queued)
    answering = [asking, asking_example]
    private = {"queue": False, "api_visibility": "private"}
    stop_outputs = [page.chatbot, page.conversation, page.sources, page.send, page.stop]
    stopping = page.stop.click(stopped, page.conversation, stop_outputs, cancels=answering, **private)
    stopping.then(stopped_again, page.conversation, stop_outputs, **private)  # see Chat.after_stop
    for clearing in (page.clear.click, page.chatbot.clear):
        follow(clearing(new_chat, page.conversation, outputs, cancels=answering, **private))
    for answered in (asking, asking_example, stopping):  # the sidebar lists the conversation, with its exports
        follow(answered)
    return answering


def _sidebar_updates(gr, page, view) -> dict:
    """A ui.chat.SidebarView as component updates."""
    update = _chat_updates(gr, page, view.chat) if view.chat is not None else {}
    if view.listed is not None:
        listed = view.listed
        files = listed.exports
        update[page.chat_list] = gr.update(choices=listed.choices, value=listed.selected)
        update[page.chat_title] = listed.title
        update[page.export_md] = gr.update(value=files[0] if files else None, interactive=bool(files))
        update[page.export_json] = gr.update(value=files[1] if files else None, interactive=bool(files))
    if view.status is not None:
        update[page.chat_status] = view.status
    if view.confirm_delete is not None:
        update[page.confirm_delete] = gr.update(visible=view.confirm_delete)
    return update


def _sidebar_follower(gr, page, sidebar):
    """`follow(event)`: after the event, the sidebar lists the conversations, the open one selected."""

    def listed(state, request):
        return _sidebar_updates(gr, page, sidebar.listed(state, _owner(request)))

    _takes_request(gr, listed)
    page.sidebar_outputs = [page.chat_list, page.chat_title, page.export_md, page.export_json, page.chat_status]
    page.sidebar_outputs.append(page.confirm_delete)
    page.listed = listed
    return lambda event: event.then(
        listed, page.conversation, page.sidebar_outputs, queue=False, api_visibility="private"
    )


def _wire_sidebar(gr, page, sidebar, answering: list, follow) -> None:
    """A saved conversation opened, renamed, deleted (after asking); the list when the page loads."""
    shown = lambda view: _sidebar_updates(gr, page, view)

    def open_conversation(choice, state, request):
        return shown(sidebar.open(choice, state, _owner(request)))

    def rename_conversation(title, state, request):
        return shown(sidebar.rename(title, state, _owner(request)))

    def ask_to_delete(state):
        return shown(sidebar.ask_to_delete(state))

    def delete_conversation(state, request):
        return shown(sidebar.delete(state, _owner(request)))

    def sidebar_after_delete(state, request):
        return shown(sidebar.after_delete(state, _owner(request)))

    _takes_request(gr, open_conversation, rename_conversation, delete_conversation, sidebar_after_delete)
    outputs, status = page.sidebar_outputs, [page.chat_status]
    private = {"queue": False, "api_visibility": "private"}
    chosen = [page.chat_list, page.conversation]
    follow(page.chat_list.input(open_conversation, chosen, [*page.chat_outputs, *status], cancels=answering, **private))
    for renaming in (page.rename_chat.click, page.chat_title.submit):
        renaming(rename_conversation, [page.chat_title, page.conversation], outputs, **private)
    page.delete_chat.click(ask_to_delete, page.conversation, [*status, page.confirm_delete], **private)
    page.confirm_delete.click(
        delete_conversation, page.conversation, [*page.chat_outputs, *status, page.confirm_delete], **private
    ).then(sidebar_after_delete, page.conversation, [o for o in outputs if o is not page.chat_status], **private)
    page.demo.load(page.listed, page.conversation, outputs, **private)


def _documents_updates(gr, page, listing, read_only: bool) -> dict:
    """A ui.documents.Listing as component updates."""
    update = {
        page.docs_table: listing.table,
        page.header: listing.header,
        page.documents: gr.update(label=listing.label),
    }
    if not read_only:
        update[page.to_remove] = gr.update(choices=list(listing.names), value=None)
    update[page.scope_picker] = gr.update(choices=listing.scope)
    return update


def _change_updates(gr, page, change, read_only: bool = False) -> dict:
    """A ui.documents.Change as component updates: the library, the status, the removal's offer."""
    update = {**_documents_updates(gr, page, change.listing, read_only), page.docs_status: change.status}
    if change.removed is not None:
        removed = change.removed
        update[page.removed] = removed.name
        update[page.removed_row] = gr.update(visible=bool(removed.name))
        update[page.delete_ask] = gr.update(visible=removed.deletable)
        update[page.confirm_file_row] = gr.update(visible=False)
    return update


def _wire_documents(gr, page, documents, read_only: bool) -> None:
    """Adding, removing, Undo and deleting an upload (each also an API endpoint); the list when
    the page loads and after the folder watcher's updates."""
    page.docs_outputs = [page.docs_table, page.header, page.documents, page.scope_picker]
    if not read_only:
        _wire_library_actions(gr, page, documents)
    page.demo.load(
        lambda: _documents_updates(gr, page, documents.listing(), read_only),
        None,
        page.docs_outputs,
        queue=False,
        api_visibility="private",
        show_progress="hidden",
    )
    if documents.watcher is not None:

        def watched(seen):
            """The watcher's line; the documents list again once an update has finished."""
            line = documents.watched(seen)
            update = {page.watch_status: line.status, page.watch_seen: line.version}
            if line.listing is not None:
                update.update(_documents_updates(gr, page, line.listing, read_only))
            return update

        gr.Timer(WATCH_REFRESH_SECONDS).tick(
            watched,
            page.watch_seen,
            [page.watch_status, page.watch_seen, *page.docs_outputs],
            queue=False,
            api_visibility="private",
            show_progress="hidden",
        )


def _wire_library_actions(gr, page, documents) -> None:
    """The documents panel's buttons. Their functions' names, parameters and docstrings are the
    API's endpoints (upload_documents, remove_document, undo_remove, delete_document)."""
    shown = lambda change: _change_updates(gr, page, change)

    def add_files(files, replace_existing, progress=gr.Progress()):  # noqa: B008 -- Gradio's own idiom
        """Add uploaded documents to the documents folder and index them."""
        return {**shown(documents.add(files, replace_existing, progress)), page.upload: None}

    def remove_file(name):
        """Take one indexed document out of the index; its file stays in the documents folder."""
        return shown(documents.remove(name))

    def undo_remove(name):
        """Bring the last removed document back into the index."""
        return shown(documents.undo(name))

    def ask_delete(name):
        question = documents.delete_question(name)
        return {
            page.confirm_file_row: gr.update(visible=True),
            page.confirm_file_text: question.text,
            page.confirm_file_delete: gr.update(value=question.button),
        }

    def delete_file(name, confirmation):
        """Delete a file the chat uploaded from the documents folder; `confirmation` repeats its name."""
        return shown(documents.delete(name, confirmation))

    page.docs_outputs.append(page.to_remove)
    outputs = [*page.docs_outputs, page.docs_status]
    page.upload.upload(
        add_files,
        [page.upload, page.replace],
        [*outputs, page.upload],
        concurrency_id=LLM_QUEUE,
        api_name="upload_documents",
        show_progress="full",
        show_progress_on=page.upload,  # on every output, its bar covered the page title
    )
    offer = [page.removed, page.removed_row, page.delete_ask, page.confirm_file_row]
    page.remove.click(
        remove_file, page.to_remove, [*outputs, *offer], concurrency_id=LLM_QUEUE, api_name="remove_document"
    )
    page.undo.click(undo_remove, page.removed, [*outputs, *offer], concurrency_id=LLM_QUEUE)
    confirming = [page.confirm_file_row, page.confirm_file_text, page.confirm_file_delete]
    page.delete_ask.click(ask_delete, page.removed, confirming, queue=False, api_visibility="private")
    page.cancel_file_delete.click(
        lambda: gr.update(visible=False), None, page.confirm_file_row, queue=False, api_visibility="private"
    )
    # The API asks for the name twice, as the confirmation names the file.
    page.confirm_file_delete.click(
        delete_file,
        [page.removed, page.removed],
        [*outputs, *offer],
        concurrency_id=LLM_QUEUE,
        api_name="delete_document",
    )


def _ask_endpoint(gr, assistant):
    """The `/ask` API endpoint's function: its name, parameters and docstring are the endpoint's."""
    from rag.scope import Scope

    def ask(question: str, only: list[str] | None = None, languages: list[str] | None = None) -> dict:
        """Answer a question from the documents: the `ask --json` object (answer, citations, retrieved,
        searched, timings_ms); `only` (files, folders, globs) and `languages` (codes) limit the documents searched."""
        try:
            return assistant.ask(question, scope=Scope.of(only or (), languages or ())).to_json()
        except RagError as error:
            raise gr.Error(render.escape(str(error)), print_exception=False) from None

    return ask
