"""The llama.cpp build runs on this CPU: a real GGUF generates real tokens, also when
several threads ask at once.

A llama-cpp-python wheel built with native CPU detection crashes (SIGSEGV in ggml's AMX
kernels) on the first decode here, and pip's cache silently reuses such a wheel; two
threads in one llama.cpp context crash it too. These tests run the model in a child
process so a crash fails the test instead of the run. The last one uses the session's
models: the answer grammar keeps the model from ending its answer before it starts.
"""

import json
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


# Four threads share one model, as chat users (and Assistants given the same model) do.
CONCURRENT = """
import json, sys, threading
from pathlib import Path
from rag.llm import LlamaCppLLM
llm = LlamaCppLLM(Path(sys.argv[1]), 1024, 2)
prompts = [[{"role": "user", "content": "Count from 1 to 5, separated by commas."}],
           [{"role": "user", "content": "Name three colours, separated by commas."}]]
def reply(messages):
    return "".join(llm.stream(messages, 8, 0.0)), llm.choose(messages, "", ["1", "2", "3"])
alone = [reply(m) for m in prompts]
together = {}
threads = [threading.Thread(target=lambda n=n: together.__setitem__(n, reply(prompts[n % 2]))) for n in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(json.dumps({"alone": alone, "together": [together[n] for n in range(4)]}))
"""


def run_default_gguf(script: str) -> str:
    settings = load_settings(environ={})
    from models.provision import provision

    path = provision(settings.llm_model, settings.models_dir, lambda message: None)
    result = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"generation crashed (exit {result.returncode}): {result.stderr[-2000:]}"
    return result.stdout


def test_default_gguf_generates_tokens_without_crashing():
    output = run_default_gguf(GENERATE)
    assert "1" in output and "5" in output, output


def test_threads_sharing_the_model_take_turns_and_get_the_replies_they_would_alone():
    replies = json.loads(run_default_gguf(CONCURRENT).splitlines()[-1])
    for n, (text, probabilities) in enumerate(replies["together"]):
        text_alone, probabilities_alone = replies["alone"][n % 2]
        assert text == text_alone
        # The KV cache a turn starts from differs, so the last digits may too.
        assert probabilities == pytest.approx(probabilities_alone, abs=0.05)


def test_an_answer_is_copied_where_the_model_would_end_its_turn_at_once(assistant):
    # Asked this, the default model chooses a passage and then, given "[n]", ends its turn at
    # once; held to copying the passage, it must copy something, and just what llama.cpp's own
    # grammar engine would have let it write (the copy constraint's twin, much slower).
    from rag import prompts

    question = (
        "Menurut artikel berbahasa Indonesia ini, pada periode tahun berapa jumlah karyawan OpenAI melonjak "
        "menjadi lebih dari tiga ribu?"
    )  # q004 in eval/gold.jsonl
    answer = assistant.ask(question)
    assert not answer.abstained, (answer.why, answer.unsupported)
    assert answer.copied and answer.copied in answer.citations[0].quote
    passages = [p.text for p in answer.passages]
    chosen = next(n for n, p in enumerate(answer.passages, 1) if answer.copied in prompts.fence(p.text))
    messages = prompts.messages(question, passages)
    assert "".join(assistant.llm.stream(messages, 8, 0.0, prefix=f"[{chosen}]")) == ""  # unconstrained
    source = prompts.copy_source(passages[chosen - 1])
    copied = "".join(assistant.llm.stream(messages, 6, 0.0, prefix=f"[{chosen}]", copy_from=source))
    held = "".join(
        assistant.llm.stream(messages, 6, 0.0, prefix=f"[{chosen}]", grammar=prompts.span_grammar(passages[chosen - 1]))
    )
    assert copied.strip() and copied == held


def test_a_reply_is_scored_token_by_token_and_the_question_makes_its_answer_likelier(assistant):
    # rag.assistant.question_gain reads these scores: the answer's words (and the end of the
    # turn after them) after the question that asks for them, against after "N/A".
    from rag import prompts

    llm = assistant.llm
    passages = [
        "The Orion bakery opened in Leeds in 1998.",
        "Its founder, Mara Lind, trained as a baker in Lyon before moving to England.",
    ]
    asked = llm.score(prompts.messages("Where did Mara Lind train as a baker?", passages), "[2]", " Lyon")
    free = llm.score(prompts.messages("N/A", passages), "[2]", " Lyon")
    assert len(asked) == len(free) == llm.count_tokens(" Lyon") + 1  # and the end of the turn
    assert all(p <= 0.0 for p in asked + free)
    other = llm.score(prompts.messages("When did the Orion bakery open?", passages), "[2]", " Lyon")
    assert sum(asked) - sum(free) > 1.0 > sum(other) - sum(free), (asked, free, other)


def test_a_copy_may_start_at_the_model_s_next_likeliest_first_token(assistant):
    # rag.assistant weighs the greedy copy against one that starts at the model's second
    # likeliest first token: held to the passage too, and less likely where it starts (often
    # the same word spelt in other tokens, sometimes another answer).
    from rag import prompts

    llm = assistant.llm
    passages = [
        "The Orion bakery opened in Leeds in 1998.",
        "Its founder, Mara Lind, trained as a baker in Lyon before moving to England.",
    ]
    messages = prompts.messages("Where did Mara Lind train as a baker?", passages)
    sources = [prompts.copy_source(passages[1], rank) for rank in (0, 1, 2)]
    copies = ["".join(llm.stream(messages, 8, 0.0, prefix="[2]", copy_from=source)).strip() for source in sources]
    assert copies[0] == "Lyon" and all(copy and copy in prompts.fence(passages[1]) for copy in copies), copies
    assert sources[0].logprobs[0] > sources[1].logprobs[0] > sources[2].logprobs[0]
    assert len(set(copies)) > 1, copies
