"""polyglot-rag: offline multilingual question answering with citations to file and paragraph."""

import os as _os

# torch and llama.cpp (ggml) both run their threads through OpenMP (libgomp), which by
# default spins at every barrier waiting for the other threads; on shared cores a spinning
# thread burns the time slice its partner needs (measurements: docs/scaling.md, "Threads").
# libgomp reads this once, when torch or llama_cpp is first imported, so it is set here,
# before any of them can be.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _limit_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas. glibc gives threads that allocate at once arenas of their own
    (up to 8 per core) and seldom returns their memory, so the chat server, answering on
    Gradio's worker threads, kept growing with every crowd of users (docs/reliability.md:
    concurrent users); llama.cpp's lock serialises the work anyway. glibc fixes the limit when
    the first extra arena is made, so this runs at import, before any thread; a
    MALLOC_ARENA_MAX in the environment wins. No-op where libc is not glibc."""
    import ctypes
    import ctypes.util

    if "MALLOC_ARENA_MAX" in _os.environ:
        return
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt(-8, arenas)  # -8: M_ARENA_MAX
    except (OSError, AttributeError):
        pass


_limit_malloc_arenas()
