"""Similarity thresholds follow the embedder: e5-small's scale is the one Settings are written
on, and the pipeline with a second embedder (EmbeddingGemma-300M) answers instead of refusing
everything on e5's numbers."""

import pytest

from rag.assistant import NOT_FOUND, Assistant
from rag.scale import E5_SMALL, Scale, measure
from rag.settings import load_settings

from .conftest import SEEDS

# Answerable gold questions in the four languages (eval/gold.jsonl).
QUESTIONS = [
    ("Which company did Calvin French-Owen co-found before joining OpenAI?", "Segment"),
    ("Codex는 몇 주 만에 만들어졌나요?", "7"),
    ("Berapa bulan Calvin French-Owen bekerja di OpenAI?", "14"),
    ("OpenAI는 메타의 '초지능' 팀에 최소 몇 명의 연구원을 잃었나요?", "8"),
]


def test_carrying_a_threshold_keeps_its_standard_score():
    other = Scale(mean=0.1, std=0.05)
    assert other.carry(E5_SMALL.mean + 2 * E5_SMALL.std, E5_SMALL) == pytest.approx(0.2)


def test_e5_small_scale_is_the_one_settings_are_written_on(assistant):
    measured = measure(assistant.embedder)
    assert measured.mean == pytest.approx(E5_SMALL.mean, abs=0.002)
    assert measured.std == pytest.approx(E5_SMALL.std, abs=0.002)


@pytest.fixture(scope="module")
def gemma_assistant(tmp_path_factory, assistant):
    folder = assistant.settings.models_dir / "embeddinggemma-300m"
    if not (folder / "model.safetensors").is_file():
        pytest.fail(f"{folder} is missing: `make install-test` provisions it (rag models --all)")
    settings = load_settings(
        environ={}, docs_dir=SEEDS, index_dir=tmp_path_factory.mktemp("gemma") / "index", embedder=str(folder)
    )
    gemma = Assistant(settings, log=lambda message: None, llm=assistant.llm)
    gemma.update_index()
    return gemma


def test_a_second_embedder_answers_on_its_own_scale(gemma_assistant):
    assert abs(gemma_assistant.scale.mean - E5_SMALL.mean) > 5 * E5_SMALL.std  # a different scale
    answers = [gemma_assistant.ask(question) for question, _ in QUESTIONS]
    floor = gemma_assistant.threshold(gemma_assistant.settings.min_similarity)
    assert all(a.passages and a.passages[0].cosine >= floor for a in answers), [a.passages[:1] for a in answers]
    assert not any(a.reason == NOT_FOUND and a.answerable is None for a in answers)  # none refused on e5's floor
    right = [expected in (a.text or "") for a, (_, expected) in zip(answers, QUESTIONS) if not a.abstained]
    assert sum(right) >= 2, [(a.text, a.why) for a in answers]
