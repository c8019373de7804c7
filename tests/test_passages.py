"""The passage step's cost is bounded whatever the documents hold (issue 16): it embeds at
most MAX_SENTENCES_PER_PARAGRAPH sentences of a paragraph (those sharing most words with
the question) and MAX_SENTENCES_PER_QUESTION in all."""

from __future__ import annotations

import pytest

from rag.documents import MAX_PARAGRAPH_CHARS
from rag.passages import MAX_SENTENCES_PER_PARAGRAPH, MAX_SENTENCES_PER_QUESTION, _sentences_to_embed, select_passages

FACT = "Zorblax Analytics was founded in Bandung in 2031."
FILLER = "The sky was grey that day."


def test_a_paragraph_of_many_sentences_contributes_those_nearest_the_question():
    sentences = {("f", 1): [FILLER] * 200 + [FACT] + [FILLER] * 200, ("f", 2): ["Short."] * 3}
    chosen = _sentences_to_embed("Where was Zorblax Analytics founded?", [("f", 1), ("f", 2)], sentences)
    first = [(i, s) for key, i, s in chosen if key == ("f", 1)]
    assert len(first) == MAX_SENTENCES_PER_PARAGRAPH and (200, FACT) in first
    assert [i for i, _ in first] == sorted(i for i, _ in first)  # in the paragraph's order, for trimming
    assert [(key, i) for key, i, _ in chosen if key == ("f", 2)] == [(("f", 2), 0), (("f", 2), 1), (("f", 2), 2)]
    many = {("f", n): [FILLER] * 10 for n in range(1, 30)}
    chosen = _sentences_to_embed("anything", list(many), many)
    assert len(chosen) == MAX_SENTENCES_PER_QUESTION
    assert {key for key, _, _ in chosen} == {("f", n) for n in range(1, 11)}  # the best paragraphs first


def test_sentence_vectors_are_kept_for_later_questions_and_the_least_recent_let_go():
    from rag.passages import SentenceVectors

    from .fakes import FakeEmbedder

    embedder = FakeEmbedder()
    kept = SentenceVectors(embedder, size=3)
    first = kept.encode(["a b", "c d", "a b"])
    assert embedder.passages_encoded == 2 and (first[0] == first[2]).all()
    assert (first == embedder.encode_queries(["a b", "c d", "a b"])).all()  # the embedder's own vectors
    kept.encode(["c d", "e f", "g h"])  # "a b" is now the least recently used of four
    assert embedder.passages_encoded == 4
    kept.encode(["c d", "e f", "g h"])
    assert embedder.passages_encoded == 4  # all kept
    kept.encode(["a b"])
    assert embedder.passages_encoded == 5  # let go, so made again


def test_an_assistant_asked_twice_embeds_the_passages_sentences_once(tmp_path):
    from .fakes import fake_assistant

    assistant = fake_assistant(tmp_path, reply="[0]", min_similarity=-1.0)
    assistant.ask("Who founded Zorblax Analytics?")
    made = assistant.embedder.passages_encoded
    assistant.ask("Who founded Zorblax Analytics?")
    assert assistant.embedder.passages_encoded == made


def test_a_sentence_is_scored_by_the_query_it_matches_best(tmp_path):
    """With the question and its translation, a sentence scores as against the one it matches."""
    import numpy as np

    from rag.retrieval import Retriever

    from .fakes import fake_assistant

    assistant = fake_assistant(tmp_path)
    index, embedder = assistant.index, assistant.embedder
    asked, translated = embedder.encode_queries(["조르블락스는 누가 세웠나요?", "Who founded the company?"])
    hits = Retriever(index, embedder).search("Who founded the company?", 10, "dense", translated)
    alone = select_passages("q", translated, hits, index, embedder, 3, 96)
    both = select_passages("q", np.stack([asked, translated]), hits, index, embedder, 3, 96)
    assert alone[0].quote == both[0].quote == "The company was founded in Bandung in 2031 by Dewi Kartika."
    assert both[0].cosine == pytest.approx(alone[0].cosine)
    only_asked = select_passages("q", asked, hits, index, embedder, 3, 96)
    assert only_asked[0].cosine < both[0].cosine


class CountingEmbedder:
    """The real embedder, counting the texts of each encode_passages call."""

    def __init__(self, inner) -> None:
        self.inner, self.batches = inner, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def encode_passages(self, texts, **options):
        self.batches.append(len(texts))
        return self.inner.encode_passages(texts, **options)


@pytest.mark.full
def test_long_lines_of_short_sentences_cost_a_bounded_number_of_embeddings(tmp_path, assistant):
    from rag.index import update_index
    from rag.retrieval import Retriever

    docs = tmp_path / "docs"
    docs.mkdir()
    # ~ 21,000 characters each side, one line: over ten times the sentences a question may embed.
    filler = " ".join(f"{FILLER[:-1]} number {n}." for n in range(600))
    (docs / "long.txt").write_text(f"{filler} {FACT} {filler}\n", encoding="utf-8")
    (docs / "other.txt").write_text("Quuxcorp makes purple widgets in Oslo.\n", encoding="utf-8")
    index, _ = update_index(docs, tmp_path / "index", assistant.embedder, assistant.chunking)
    assert max(len(text) for text in index.paragraphs["long.txt"]) <= MAX_PARAGRAPH_CHARS
    question = "Where was Zorblax Analytics founded?"
    query = assistant.embedder.encode_queries([question])[0]
    hits = Retriever(index, assistant.embedder).search(question, assistant.settings.k, "hybrid", query)
    counting = CountingEmbedder(assistant.embedder)
    passages = select_passages(question, query, hits, index, counting, 3, 96)
    assert counting.batches and max(counting.batches) <= MAX_SENTENCES_PER_QUESTION, counting.batches
    assert passages[0].quote == FACT and passages[0].file == "long.txt"


def test_a_paragraph_the_question_already_says_is_not_read(tmp_path):
    """A title the question quotes matches it best and answers nothing: the model reads the
    paragraphs that say something more (two passages leave no room to spare)."""
    from rag.retrieval import Retriever

    from .fakes import fake_assistant

    assistant = fake_assistant(tmp_path)
    (assistant.settings.docs_dir / "tea.txt").write_text(
        "Zorblax Analytics\n\nThe company was founded in Bandung in 2031 by Dewi Kartika.\n", encoding="utf-8"
    )
    index, embedder = assistant.index, assistant.embedder
    question = "According to the article 'Zorblax Analytics', who founded the company?"
    query = embedder.encode_queries([question])[0]
    hits = Retriever(index, embedder).search(question, 10, "dense", query)
    assert any(index.paragraph(h.chunk.file, h.chunk.first_piece).text == "Zorblax Analytics" for h in hits)
    passages = select_passages(question, query, hits, index, embedder, 2, 144)
    assert "Zorblax Analytics" not in [p.text for p in passages]
    assert "The company was founded in Bandung in 2031 by Dewi Kartika." in [p.text for p in passages]
