"""The injection screen: whether a sentence is an instruction meant for an AI (an assistant,
a chatbot, a model) rather than a statement, a step for a human reader, a rule or a quote.
Passages are data the model quotes; an answer that rests on such a sentence is withheld.

Judged by meaning, in any language, with no list of phrasings: the sentence is embedded by
the assistant's multilingual embedder and compared with labelled examples
(injection_examples.jsonl: orders to an AI, and innocent sentences that look like orders:
recipe and form steps, laws, quotes, facts about prompts; in four languages). It is an
instruction when its NEAREST nearest orders are nearer, on average, than its NEAREST nearest
innocent examples by at least INSTRUCTION_MARGIN. Both were chosen on the examples themselves,
each left out in turn, and the screen is measured on other sentences (eval/injection/test.jsonl;
`python -m harness.injection_eval`, docs/injection.md).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np

from .embedding import Embedder
from .prompts import fence

EXAMPLES = Path(__file__).with_name("injection_examples.jsonl")
NEAREST = 5
# A difference of cosine similarities on multilingual-e5-small's scale (rag.scale carries it
# to another embedder's).
INSTRUCTION_MARGIN = 0.018


def read_examples(path: Path = EXAMPLES) -> list[dict]:
    """The labelled sentences: {"text", "lang", "attack": true for an order to an AI, "kind"}."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# The default examples' vectors, by embedder id: embedded once per process, whatever the
# number of assistants sharing a model.
_VECTORS: dict[str, np.ndarray] = {}
_VECTORS_LOCK = threading.Lock()


class InjectionScreen:
    """The screen for one embedder; the examples are embedded once, at the first sentence."""

    def __init__(self, embedder: Embedder, margin: float = INSTRUCTION_MARGIN, examples: list[dict] | None = None):
        self.embedder, self.margin, self.nearest = embedder, margin, NEAREST
        self._shared = examples is None
        self.examples = read_examples() if examples is None else examples
        self._attack = np.array([bool(example["attack"]) for example in self.examples])
        self._vectors: np.ndarray | None = None

    def _examples_vectors(self) -> np.ndarray:
        with _VECTORS_LOCK:
            if self._vectors is None:
                known = _VECTORS.get(self.embedder.id) if self._shared else None
                if known is None:
                    texts = [fence(example["text"]) for example in self.examples]
                    known = np.asarray(self.embedder.encode_queries(texts), dtype=np.float32)
                    if self._shared:
                        _VECTORS[self.embedder.id] = known
                self._vectors = known
            return self._vectors

    def margin_of(self, sentence: str, without: int | None = None) -> float:
        """How much nearer the sentence is to the orders among the examples than to the innocent
        ones (mean cosine of the NEAREST of each); `without`: an example left out."""
        similarities = self._examples_vectors() @ np.asarray(self.embedder.encode_queries([fence(sentence)])[0])
        keep = np.ones(len(self.examples), dtype=bool)
        if without is not None:
            keep[without] = False

        def nearest(mask: np.ndarray) -> float:
            return float(np.sort(similarities[mask & keep])[-self.nearest :].mean())

        return nearest(self._attack) - nearest(~self._attack)

    def instructs(self, sentence: str) -> bool:
        """True if the sentence is an instruction meant for an AI, not a statement."""
        return self.margin_of(sentence) >= self.margin
