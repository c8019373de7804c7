"""harness/probes.py's LLM probe: which calls it counts as a question's answer. Fast: a stand-in LLM."""

from __future__ import annotations

from rag import prompts

from .fakes import StandInLLM


class Scripted(StandInLLM):
    def choose(self, messages, prefix, options):
        return {option: 1 / len(options) for option in options}

    def stream(self, messages, max_tokens, temperature, grammar=None, prefix="", copy_from=None, logprobs=None):
        yield " text"


def test_a_question_s_answer_is_one_call_and_what_follows_it_are_follow_ons():
    from harness.probes import LlmProbe

    probe = LlmProbe(Scripted())
    for _ in range(2):  # two questions
        probe.choose([], prompts.CHOICE_PREFIX, prompts.choices(3))
        list(probe.stream([], 8, 0.0, prefix="[1]"))
        list(probe.stream([], 8, 0.0, prefix="[2]"))  # another source read
        list(probe.stream([], 8, 0.0))  # the translation
    assert len(probe.calls) == 2 and len(probe.follow_ons) == 4
