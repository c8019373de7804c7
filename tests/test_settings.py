"""Settings: defaults <- environment <- flags, each flag declared once and offered by every command."""

import contextlib
import io

import pytest

from rag.cli import ask_main, rag_main
from rag.errors import RagError
from rag.settings import OPTIONS, given_flags, load_settings, settings_from_args, settings_options


def help_text(main, *argv) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exited:
        main([*argv, "--help"])
    assert exited.value.code == 0
    return out.getvalue()


@pytest.mark.parametrize(
    "command",
    [
        (ask_main,),
        (rag_main, "index"),
        (rag_main, "models"),
        (rag_main, "eval"),
        (rag_main, "bench"),
        (rag_main, "ui"),
        (rag_main, "serve"),
    ],
)
def test_every_command_offers_the_shared_flags(command):
    text = help_text(*command)
    for option in OPTIONS:
        if option.flag and not option.generation and not option.serving and not option.scope:
            assert option.flag in text and option.env in text, (option.flag, command)
    generates = command in ((ask_main,), (rag_main, "ui"), (rag_main, "serve"))
    assert ("--max-tokens" in text) == generates and ("--temperature" in text) == generates
    serves = command in ((rag_main, "ui"), (rag_main, "serve"))
    assert ("--api-key" in text) == serves and ("RAG_API_KEY" in text) == serves
    assert ("--only" in text) == ("--lang" in text) == (command == (ask_main,))


def test_flags_override_the_environment_which_overrides_the_defaults(tmp_path):
    args = settings_options().parse_args(["--k", "7", "--index", str(tmp_path)])
    settings = settings_from_args(args, environ={"RAG_K": "3", "RAG_RETRIEVAL": "dense", "RAG_THREADS": "1"})
    assert settings.k == 7 and settings.index_dir == tmp_path
    assert settings.retrieval == "dense" and settings.threads == 1
    assert settings.index_type == load_settings(environ={}).index_type
    assert given_flags(args) == [("--index", tmp_path), ("--k", 7)]


@pytest.mark.parametrize(
    "environ, message",
    [
        ({"RAG_K": "many"}, "RAG_K='many' is not a valid k"),
        ({"RAG_K": "0"}, "k must be between 1 and 50"),
        ({"RAG_RETRIEVAL": "fuzzy"}, "retrieval must be dense, keyword or hybrid"),
        ({"RAG_TEMPERATURE": "9"}, "temperature must be between 0 and 2"),
    ],
)
def test_a_bad_value_is_a_one_line_error(environ, message):
    with pytest.raises(RagError, match=message) as raised:
        load_settings(environ=environ)
    assert "\n" not in str(raised.value)


def test_a_subcommand_that_cannot_be_loaded_is_a_one_line_error(monkeypatch, capsys):
    from importlib import metadata

    broken = metadata.EntryPoint("eval", "harness.nowhere:command", "polyglot_rag.commands")
    monkeypatch.setattr(metadata, "entry_points", lambda group: [broken])
    assert rag_main(["eval"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "rag: error: the subcommand eval (harness.nowhere:command)" in err
