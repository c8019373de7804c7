"""The llama.cpp build runs on this CPU: a real GGUF generates real tokens.

A llama-cpp-python wheel built with native CPU detection crashes (SIGSEGV in ggml's AMX
kernels) on the first decode here, and pip's cache silently reuses such a wheel; this
test runs generation in a child process so a crash fails the test instead of the run.
"""

import subprocess
import sys

import pytest

from rag.settings import load_settings

pytestmark = pytest.mark.full

GENERATE = """
import sys
from pathlib import Path
from rag.llm import LlamaCppLLM
llm = LlamaCppLLM(Path(sys.argv[1]), 512, 2)
messages = [{"role": "user", "content": "Count from 1 to 5, separated by commas."}]
print("".join(llm.stream(messages, max_tokens=24, temperature=0.0)))
"""


def test_default_gguf_generates_tokens_without_crashing():
    settings = load_settings(environ={})
    from models.provision import provision

    path = provision(settings.llm_model, settings.models_dir, lambda message: None)
    result = subprocess.run([sys.executable, "-c", GENERATE, str(path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"generation crashed (exit {result.returncode}): {result.stderr[-2000:]}"
    assert "1" in result.stdout and "5" in result.stdout, result.stdout
