"""`rag serve`: the OpenAI-compatible API (ui/api.py) alone, without the chat page, on a watched
documents folder."""

from __future__ import annotations

import argparse
import sys

from rag.cli import Command
from rag.errors import RagError
from rag.settings import add_serving_flags, add_settings_flags, settings_from_args

from .api import api_access
from .app import warm_up

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST}: this machine only)"
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument(
        "--no-auth",
        action="store_true",
        help="allow a non-local --host without an API key (anyone on the network can use it)",
    )
    parser.add_argument(
        "--no-watch", action="store_true", help="do not index files added, changed or removed in the documents folder"
    )
    add_settings_flags(parser, generation=True)
    add_serving_flags(parser)


def run(args: argparse.Namespace) -> int:
    from rag.assistant import Assistant
    from rag.watch import FolderWatcher, announcer

    from .api import api_server

    if not 0 < args.port < 65536:
        raise RagError(f"--port must be between 1 and 65535, not {args.port}")
    settings = settings_from_args(args)
    access, how = api_access(args.host, settings.api_key, no_auth=args.no_auth)
    assistant = Assistant(settings)
    server, listening, url = api_server(assistant, access, args.host, args.port)
    log = lambda message: print(message, file=sys.stderr, flush=True)
    warm_up(assistant, log)
    watcher = None
    if not args.no_watch:
        watcher = FolderWatcher(assistant, on_change=announcer(log), log=log).start()
    watching = f"; watching {settings.docs_dir}" if watcher else ""
    print(f"OpenAI-compatible API at {url} ({how}{watching}). Press Ctrl+C to stop.", flush=True)
    try:
        # On Ctrl+C uvicorn lets open requests end, then raises the interrupt again.
        server.run(sockets=[listening])
    except KeyboardInterrupt:
        pass
    finally:
        if watcher is not None:
            watcher.stop()
    print("Stopped serving the API.", file=sys.stderr, flush=True)
    return 0


command = Command("serve the OpenAI-compatible API (/v1/chat/completions, /v1/models)", add_arguments, run)
