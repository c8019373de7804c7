"""polyglot-rag: offline multilingual question answering with citations to file and paragraph."""

import os as _os

# torch and llama.cpp (ggml) both run their threads through OpenMP (libgomp), which by
# default spins at every barrier waiting for the other threads. When the cores are shared
# with other processes, a spinning thread burns the time slice its partner needs, and a
# 2-thread query embedding took 1.7 s instead of 50 ms here, llama.cpp decoding 0.9 instead
# of 7 tokens/s (see docs/scaling.md, "Threads"). Sleeping waiters cost little when the
# machine is idle. libgomp reads this once, when torch or llama_cpp is first imported, so
# it is set here, before any of them can be.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
