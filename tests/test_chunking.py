"""Chunks of the real seeds, sized in embedder tokens, mapped back to their paragraphs."""

import pytest

from rag.chunking import ChunkingSettings, chunk_document
from rag.documents import Document, read_documents, split_paragraphs

from .conftest import SEEDS


@pytest.fixture(scope="module")
def count_tokens(assistant):
    return assistant.embedder.count_tokens


@pytest.fixture(scope="module")
def seed_chunks(count_tokens):
    settings = ChunkingSettings(128, 16)
    return {d.file: (d, chunk_document(d, settings, count_tokens)) for d in read_documents(SEEDS)[0]}


def test_chunks_stay_within_size_and_their_file(seed_chunks, count_tokens):
    for file, (document, chunks) in seed_chunks.items():
        assert chunks
        for chunk in chunks:
            assert chunk.file == file
            assert 1 <= chunk.first_piece <= chunk.last_piece <= len(document.paragraphs)
            pieces = document.paragraphs[chunk.first_piece - 1], document.paragraphs[chunk.last_piece - 1]
            assert (chunk.first, chunk.last) == (pieces[0].number, pieces[1].number)
            assert count_tokens(chunk.text) <= 128


def test_chunk_text_comes_from_the_paragraphs_it_names(seed_chunks):
    for document, chunks in seed_chunks.values():
        for chunk in chunks:
            covered = "\n".join(p.text for p in document.paragraphs[chunk.first_piece - 1 : chunk.last_piece])
            assert chunk.text in covered
            first = document.paragraphs[chunk.first_piece - 1]
            assert covered.startswith(chunk.text[:20]) or chunk.text[:20] in first.text


def test_every_paragraph_is_in_some_chunk(seed_chunks):
    for document, chunks in seed_chunks.values():
        covered = {n for c in chunks for n in range(c.first_piece, c.last_piece + 1)}
        assert covered == set(range(1, len(document.paragraphs) + 1))


def test_long_chinese_text_splits_at_sentence_ends(count_tokens):
    sentence = "我为什么加入OpenAI，这是一个关于数据中心性能工程的长故事。"
    document = Document("zh.txt", "0", "zh", split_paragraphs("zh.txt", sentence * 40))
    chunks = chunk_document(document, ChunkingSettings(64, 0), count_tokens)
    assert len(chunks) > 1
    assert all(c.first == c.last == 1 for c in chunks)
    assert all(c.text.endswith("。") for c in chunks)
