"""The LLM seam: chat messages in, a stream of text pieces out."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .errors import RagError
from .prompts import CopySource, span_grammar

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": ...}


class LLM(Protocol):
    id: str

    def stream(
        self,
        messages: list[Message],
        max_tokens: int,
        temperature: float,
        grammar: str | None = None,
        prefix: str = "",
        copy_from: CopySource | None = None,
        logprobs: list[float] | None = None,
    ) -> Iterator[str]:
        """The reply, piece by piece; `prefix` is the start of the reply, given rather than
        generated (not repeated in the pieces); with `copy_from`, the reply after the prefix is
        a run of that passage's text, copied (greedy decoding only). A backend that can read
        them appends to `logprobs` the model's own log-probability of each token it wrote."""

    def choose(self, messages: list[Message], prefix: str, options: list[str]) -> dict[str, float] | None:
        """The model's probability of each option (one token each) as the next text after `prefix`
        at the start of its reply, renormalised over the options; None if the backend cannot tell."""

    def score(self, messages: list[Message], prefix: str, text: str) -> list[float] | None:
        """The model's log-probability of each token of `text` as the reply after `prefix`, then
        of the end of its turn there; None if the backend cannot tell."""

    def count_tokens(self, text: str) -> int: ...


class LlamaCppLLM:
    """A GGUF model in this process through llama-cpp-python, using its own chat template.

    The model is memory-mapped and loaded once; llama-cpp-python keeps the KV cache of
    the previous prompt and only evaluates the part of a new prompt after the common
    prefix, so the fixed system text first in every prompt is processed once per process.
    A llama.cpp context is not thread-safe: calls from any thread, and from every Assistant
    given this object, take turns on its lock (a stream holds it until it ends or is closed).
    """

    def __init__(self, path: Path, context_tokens: int, threads: int) -> None:
        from models.provision import check_llm_file

        check_llm_file(path)
        import llama_cpp

        try:
            self.model = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=context_tokens,
                n_threads=threads,
                n_threads_batch=threads,
                n_batch=512,
                use_mmap=True,
                verbose=False,
            )
        except (ValueError, RuntimeError) as error:
            raise RagError(
                f"cannot load LLM {path} ({str(error).splitlines()[0]}): the file is truncated or not a "
                f"llama.cpp GGUF; copy or download it again, or leave out --llm to use the default model"
            ) from None
        self.id = path.name
        self._lock = threading.Lock()  # a plain Lock: a stream may be resumed on another thread
        self._grammars: dict[str, object] = {}
        self._formatter = None

    def count_tokens(self, text: str) -> int:
        return len(self.model.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def _prompt_tokens(self, messages: list[Message], prefix: str) -> tuple[list[int], list[str] | str | None]:
        """The messages in the GGUF's own chat template, the assistant turn opened, then `prefix`;
        and the template's stop strings."""
        if self._formatter is None:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            template = self.model.metadata.get("tokenizer.chat_template")
            if not template:
                raise RagError(f"the LLM {self.id} has no chat template in its GGUF metadata")
            token_text = lambda token: self.model.detokenize([token], special=True).decode("utf-8", "replace")
            self._formatter = Jinja2ChatFormatter(
                template, eos_token=token_text(self.model.token_eos()), bos_token=token_text(self.model.token_bos())
            )
        formatted = self._formatter(messages=messages)
        return (
            self.model.tokenize((formatted.prompt + prefix).encode("utf-8"), add_bos=False, special=True),
            formatted.stop,
        )

    def stream(
        self,
        messages: list[Message],
        max_tokens: int,
        temperature: float,
        grammar: str | None = None,
        prefix: str = "",
        copy_from: CopySource | None = None,
        logprobs: list[float] | None = None,
    ) -> Iterator[str]:
        from llama_cpp import LlamaGrammar, LogitsProcessorList

        if grammar is not None and grammar not in self._grammars:
            self._grammars[grammar] = LlamaGrammar.from_string(grammar, verbose=False)
        tokens, stop = self._prompt_tokens(messages, prefix)
        if copy_from:
            processors = LogitsProcessorList([self._copying(copy_from, len(tokens))])
        elif logprobs is not None:
            processors = LogitsProcessorList([_recording(logprobs, len(tokens))])
        else:
            processors = None
        with self._lock:
            try:
                # A streamed completion reuses the KV cache of the longest common prefix (the system text).
                pieces = self.model.create_completion(
                    tokens,
                    stream=True,
                    max_tokens=max_tokens,
                    temperature=temperature,
                    seed=0,
                    stop=stop,
                    grammar=self._grammars.get(grammar) if grammar else None,
                    logits_processor=processors,
                )
                for piece in pieces:
                    text = piece["choices"][0]["text"]
                    if text:
                        yield text
            except ValueError as error:  # e.g. the prompt exceeds the context window
                raise RagError(f"the LLM refused the prompt: {error}") from None

    # How many of the most likely tokens the copy constraint looks at before giving up and ending.
    COPY_CANDIDATES = 64

    def _copying(self, source: CopySource, prompt_tokens: int):
        """A logits processor that keeps greedy decoding inside `source`: at each step the most
        likely token that continues a run of the passage (from one of its copy starts) wins, and
        the end of the turn only where the run ends at a copy unit's end; before anything is
        copied, the `source.start_rank` likeliest tokens that would start a copy are passed over.
        A grammar does the same but llama.cpp checks it against the whole vocabulary at every
        step (seconds per token for a passage's worth of alternatives); this looks at the few
        likeliest tokens."""
        import numpy as np

        data = source.text.encode("utf-8")
        byte_at = {i: len(source.text[:i].encode("utf-8")) for i in {*source.starts, *source.ends}}
        starts = [byte_at[i] for i in source.starts]
        ends = {byte_at[i] for i in source.ends}
        end_tokens = set(self._end_tokens())

        def piece(token: int) -> bytes:
            return self.model.detokenize([token], special=True)

        def process(input_ids, scores):
            generated = self.model.detokenize(list(input_ids[prompt_tokens:]), special=True)
            copied = generated.lstrip(b" ")
            alive = [s for s in starts if data.startswith(copied, s)] if copied else starts
            top = np.argpartition(-scores, self.COPY_CANDIDATES)[: self.COPY_CANDIDATES]
            choice, passed = None, 0
            for token in top[np.argsort(-scores[top])].tolist():
                if token in end_tokens:
                    if copied and any(s + len(copied) in ends for s in alive):
                        choice = token
                        break
                    continue
                if not generated and piece(token) == b" ":  # the space before the first word
                    choice = token
                    break
                candidate = (copied + piece(token)) if copied else piece(token).lstrip(b" ")
                if candidate and any(data.startswith(candidate, s) for s in alive):
                    if not copied and passed < source.start_rank:
                        passed += 1
                        continue
                    choice = token
                    break
            if choice is None:  # nothing likely continues the copy: end it here
                choice = self.model.token_eos()
            elif choice not in end_tokens and (generated or piece(choice) != b" "):
                source.logprobs.append(float(scores[choice] - _logsumexp(scores)))
            allowed = np.full_like(scores, -np.inf)
            allowed[choice] = 0.0
            return allowed

        return process

    def choose(self, messages: list[Message], prefix: str, options: list[str]) -> dict[str, float] | None:
        import numpy as np

        ids = [self.model.tokenize(option.encode("utf-8"), add_bos=False, special=False) for option in options]
        if any(len(i) != 1 for i in ids):
            return None
        tokens, _ = self._prompt_tokens(messages, prefix)
        self._check_fits(len(tokens))
        with self._lock:
            self._evaluate(tokens)
            chosen = self._logits_at(-1)[[i[0] for i in ids]]
        weights = np.exp(chosen - chosen.max())
        return dict(zip(options, (weights / weights.sum()).tolist()))

    def score(self, messages: list[Message], prefix: str, text: str) -> list[float]:
        tokens, _ = self._prompt_tokens(messages, prefix)
        scored = self.model.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        scored.append(self._end_tokens()[0])
        self._check_fits(len(tokens) + len(scored))
        with self._lock:
            self._evaluate(tokens)
            rows = [self._logits_at(-1), *self._evaluate_keeping_logits(scored[:-1])]
        return [float(row[token]) - _logsumexp(row) for row, token in zip(rows, scored)]

    def _evaluate_keeping_logits(self, tokens: list[int]) -> list:
        """Evaluate `tokens` after what the KV cache holds, as Llama.eval does, keeping every
        position's logits: Llama.eval keeps only the last one's unless the model was loaded with
        logits_all, whose buffer (context length × vocabulary floats) every call would pay for.
        Uses llama-cpp-python's batch and context objects (the version is pinned)."""
        model, rows = self.model, []
        for start in range(0, len(tokens), model.n_batch):
            batch = tokens[start : start + model.n_batch]
            past = model.n_tokens
            model._ctx.kv_cache_seq_rm(-1, past, -1)
            model._batch.set_batch(batch=batch, n_past=past, logits_all=True)
            model._ctx.decode(model._batch)
            model.input_ids[past : past + len(batch)] = batch
            model.n_tokens += len(batch)
            rows += [self._logits_at(i) for i in range(len(batch))]
        return rows

    def _evaluate(self, tokens: list[int]) -> None:
        """Evaluate only what follows the prefix already in the KV cache, as generation does
        (at least the last token, so that its logits are fresh)."""
        cached = self.model.input_ids[: self.model.n_tokens].tolist()
        shared = 0
        while shared < min(len(cached), len(tokens) - 1) and cached[shared] == tokens[shared]:
            shared += 1
        self.model.n_tokens = shared
        self.model.eval(tokens[shared:])

    def _logits_at(self, position: int):
        """A copy, as float64, of the logits of position `position` of the last batch evaluated (-1:
        its last); Llama.scores keeps them only with logits_all, which costs memory."""
        import llama_cpp
        import numpy as np

        return np.ctypeslib.as_array(
            llama_cpp.llama_get_logits_ith(self.model.ctx, position), shape=(self.model.n_vocab(),)
        ).astype(np.float64)

    def _end_tokens(self) -> list[int]:
        """The tokens that end the model's turn: the chat templates' end of turn (<|im_end|> for
        Qwen, <|eot_id|> for Llama 3) where the vocabulary has it as one token, then end of stream."""
        markers = (self.model.tokenize(m.encode(), add_bos=False, special=True) for m in ("<|im_end|>", "<|eot_id|>"))
        return [*(ids[0] for ids in markers if len(ids) == 1), self.model.token_eos()]

    def _check_fits(self, tokens: int) -> None:
        if tokens >= self.model.n_ctx():
            raise RagError(
                f"the LLM refused the prompt: {tokens} tokens exceed the context window of {self.model.n_ctx()}"
            )


def _recording(logprobs: list[float], prompt_tokens: int):
    """A logits processor that changes nothing and appends to `logprobs` the log-probability of
    each token the sampler took (read from the step before, by the token now last in the input;
    the token that ends the reply is not counted)."""
    last: list = []

    def process(input_ids, scores):
        if last and len(input_ids) > prompt_tokens:
            previous, total = last.pop()
            logprobs.append(float(previous[input_ids[-1]] - total))
        last.append((scores.copy(), _logsumexp(scores)))
        return scores

    return process


def _logsumexp(values) -> float:
    import numpy as np

    top = float(values.max())
    return top + float(np.log(np.exp(values - top).sum()))


class OpenAICompatibleLLM:
    """A model served over HTTP by an OpenAI-compatible server (llama.cpp's `llama-server`,
    `python -m llama_cpp.server`, vLLM, ...), streamed from `/v1/chat/completions`.

    The GBNF grammar goes in the request's extra field `grammar`, which llama.cpp servers
    apply; a server that ignores it still answers, and the answer check in the Assistant
    catches a reply without a citation. Standard library only (urllib); proxies are not
    used for a server on this machine.
    """

    def __init__(self, url: str, timeout: float = 120.0, model: str | None = None) -> None:
        from urllib.parse import urlsplit

        url = url.strip()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RagError(f"--llm-url must be an http(s) URL such as http://127.0.0.1:8080, not {url!r}")
        base = url.rstrip("/")
        for suffix in ("/chat/completions", "/v1"):
            if base.endswith(suffix):
                base = base[: -len(suffix)]
        self.base_url = base  # without /v1
        self.endpoint = f"{base}/v1/chat/completions"
        self.id = url
        self.timeout = timeout
        self.model = model
        self._opener = self._build_opener(parts.hostname)

    @staticmethod
    def _build_opener(host: str):
        import urllib.request

        from .settings import is_local_host

        return (
            urllib.request.build_opener(urllib.request.ProxyHandler({}))
            if is_local_host(host)
            else urllib.request.build_opener()
        )

    def _post(self, url: str, body: dict, accept: str = "application/json"):
        """The open HTTP response; RagError for refused connections, timeouts, HTTP errors."""
        import json
        import socket
        import urllib.error
        import urllib.request

        request = urllib.request.Request(
            url,
            data=json.dumps(body, ensure_ascii=False).encode("utf-8"),
            method="POST",
            headers={"Content-Type": "application/json", "Accept": accept},
        )
        try:
            return self._opener.open(request, timeout=self.timeout)
        except urllib.error.HTTPError as error:
            raise RagError(
                f"the LLM server at {self.base_url} answered HTTP {error.code}: {_error_text(error)}"
            ) from None
        except urllib.error.URLError as error:
            reason = error.reason
            if isinstance(reason, (TimeoutError, socket.timeout)):
                raise RagError(f"the LLM server at {self.base_url} did not answer within {self.timeout:g} s") from None
            raise RagError(f"cannot reach the LLM server at {self.base_url}: {_reason_text(reason)}") from None
        except TimeoutError:
            raise RagError(f"the LLM server at {self.base_url} did not answer within {self.timeout:g} s") from None
        except OSError as error:
            raise RagError(f"cannot reach the LLM server at {self.base_url}: {_reason_text(error)}") from None

    def choose(self, messages: list[Message], prefix: str, options: list[str]) -> None:
        return None  # chat servers do not continue a given start of the reply

    def score(self, messages: list[Message], prefix: str, text: str) -> None:
        return None  # nor score a given reply

    def stream(
        self,
        messages: list[Message],
        max_tokens: int,
        temperature: float,
        grammar: str | None = None,
        prefix: str = "",
        copy_from: CopySource | None = None,
        logprobs: list[float] | None = None,  # not read from a server
    ) -> Iterator[str]:
        import json

        if copy_from is not None and grammar is None:
            grammar = span_grammar(copy_from.text)  # servers apply it without checking every token
        if prefix:
            raise RagError(f"the LLM server at {self.base_url} cannot continue a given start of the reply")

        body: dict = {
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "stream": True,
            "seed": 0,
        }
        if self.model:
            body["model"] = self.model
        if grammar is not None:
            body["grammar"] = grammar
        with self._post(self.endpoint, body, accept="text/event-stream") as response:
            try:
                for raw in response:  # server-sent events: "data: {...}" lines, blank lines between
                    line = raw.decode("utf-8", errors="replace").strip()
                    if not line.startswith("data:"):
                        continue  # comments (": ping"), "event:" and "id:" lines, blank separators
                    data = line[len("data:") :].strip()
                    if data == "[DONE]":
                        return
                    try:
                        event = json.loads(data)
                    except ValueError:
                        raise RagError(
                            f"the LLM server at {self.base_url} sent an unreadable event: {data[:200]}"
                        ) from None
                    if isinstance(event, dict) and event.get("error"):
                        raise RagError(f"the LLM server at {self.base_url} failed: {_message_of(event['error'])}")
                    for choice in event.get("choices") or []:
                        text = (choice.get("delta") or {}).get("content")
                        if text:
                            yield text
            except TimeoutError:
                raise RagError(f"the LLM server at {self.base_url} stopped sending for {self.timeout:g} s") from None
            except OSError as error:
                raise RagError(
                    f"the connection to the LLM server at {self.base_url} broke: {_reason_text(error)}"
                ) from None

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` in the served model's tokenizer, by the server's tokenize endpoint
        (llama-server and vLLM: /tokenize; llama-cpp-python: /extras/tokenize)."""
        import json

        attempts = [
            (f"{self.base_url}/tokenize", {"content": text, "prompt": text}),
            (f"{self.base_url}/extras/tokenize", {"input": text}),
        ]
        problems = []
        for url, body in attempts:
            try:
                with self._post(url, body) as response:
                    answer = json.loads(response.read().decode("utf-8"))
            except RagError as error:
                problems.append(str(error))
                continue
            if isinstance(answer.get("count"), int):
                return answer["count"]
            if isinstance(answer.get("tokens"), list):
                return len(answer["tokens"])
        raise RagError(f"the LLM server at {self.base_url} cannot count tokens ({problems[-1]})")


@dataclass(frozen=True)
class LLMBackend:
    """One way to run the LLM, as rag/backends.py registers it."""

    accepts: Callable[..., bool]  # (settings): is this the backend the settings ask for?
    load: Callable[..., LLM]  # (settings, log): the loaded model


def load_llm(settings, log: Callable[[str], None]) -> LLM:
    """The LLM of the first registered backend that accepts the settings (rag/backends.py)."""
    from . import backends

    return backends.first_accepting(backends.LLMS, settings).load(settings, log)


def _load_llama_cpp(settings, log: Callable[[str], None]) -> LlamaCppLLM:
    if settings.llm_model is not None:  # a catalogue model, provisioned on first use
        from models.provision import provision

        provision(settings.llm_model, settings.models_dir, log)
    return LlamaCppLLM(settings.llm_path, settings.context_tokens, settings.threads)


# A server named by --llm-url.
OPENAI_COMPATIBLE = LLMBackend(
    accepts=lambda settings: bool(settings.llm_url), load=lambda settings, log: OpenAICompatibleLLM(settings.llm_url)
)
# A GGUF in this process: a catalogue name or a path.
LLAMA_CPP = LLMBackend(accepts=lambda settings: True, load=_load_llama_cpp)


def _message_of(error: object) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error)


def _error_text(error) -> str:
    """The message in an HTTP error's body (OpenAI style `{"error": {"message": ...}}`), one line."""
    import json

    try:
        body = error.read().decode("utf-8", errors="replace")
    except Exception:
        body = ""
    try:
        data = json.loads(body)
        text = _message_of(data.get("error") or data.get("detail") or data) if isinstance(data, dict) else body
    except ValueError:
        text = body or str(error.reason)
    return " ".join(str(text).split())[:300] or str(error.reason)


def _reason_text(reason: object) -> str:
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused (is the server running?)"
    return " ".join(str(getattr(reason, "strerror", None) or reason).split())
