"""An answer copied from a passage, and the sentence of its paragraph it stands in.

The answer step constrains the model to copy a run of the chosen passage's text
(rag.prompts.span_grammar), so an answer cannot add a number or a name the document does
not have: what is left to decide here is whether a copied span is an answer at all, and
which sentence of the paragraph a reader should be shown. Both rules hold in any language:
they compare tokens and characters, not words from a list.
"""

from __future__ import annotations

import unicodedata

from .injection import instructs
from .keywords import adds_nothing, tokenize
from .prompts import fence
from .text import split_sentences


def _bare(text: str) -> str:
    """Text as the model read it, without white space, for locating a copy in the original."""
    return "".join(fence(text).split())


def problem_with_span(span: str, question: str) -> str | None:
    """Why a copied span is no answer to the question, or None."""
    if not any(unicodedata.category(c)[0] in "LN" for c in span):
        return "the answer is empty"
    if adds_nothing(span, set(tokenize(question))):
        return "the answer only repeats words of the question"
    return None


def quote_of(span: str, paragraph: str) -> str | None:
    """The sentence (or run of sentences) of the paragraph that holds the copied span, verbatim;
    None if the paragraph does not hold it."""
    wanted = _bare(span)
    if not wanted:
        return None
    sentences = split_sentences(paragraph) or [paragraph]
    for length in range(1, len(sentences) + 1):
        for first in range(len(sentences) - length + 1):
            run = sentences[first : first + length]
            if wanted in _bare("".join(run)):
                start = paragraph.find(run[0])
                end = paragraph.find(run[-1], start) + len(run[-1])
                return paragraph[start:end] if start >= 0 and end >= start else " ".join(run)
    return None


def problem_with_quote(quote: str) -> str | None:
    """Why the sentence an answer stands in cannot vouch for it, or None."""
    if instructs(quote):
        return "the cited sentence is an instruction, not a statement of fact"
    return None
