"""Where trial responses come from: the :class:`Backend` protocol, and an OpenAI-compatible HTTP server.

A backend turns :class:`~common.prompts.PromptSource` prompts into :class:`Completion` objects, taking one seed per
prompt so that each trial can be regenerated on its own:

- the local bridged model's backend joins a loaded model (:mod:`activations`) to this protocol, so it lives a layer
  up, in :class:`experiments.jobs.backends.LocalBackend`;
- :class:`OpenAIBackend` calls a vLLM / llama.cpp / TGI server (``/v1/chat/completions`` for chat models,
  ``/v1/completions`` for base-model documents) with the stdlib only, one request per trial carrying that trial's
  ``seed``; requests of a batch run concurrently so the server can batch them. Reproducibility then depends on the
  server honouring ``seed`` (vLLM does per request; others may not).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from common.errors import ConfigError, ToolkitError
from common.prompts import PromptSource, default_document

__all__ = ["Backend", "BackendError", "Completion", "OpenAIBackend"]

log = logging.getLogger(__name__)


class BackendError(ToolkitError, RuntimeError):
    """A generation backend that cannot be reached or answers with an error or malformed data."""


@dataclass(frozen=True)
class Completion:
    """One response.

    ``text`` is the output as the model produced it (for a local model including any ``<think>`` block);
    ``reasoning`` is a reasoning channel the server returned separately (vLLM ``reasoning_content``), else None;
    ``finished`` is True when the model stopped by itself, False when the token limit cut it off, None if unknown.
    """

    text: str
    reasoning: str | None = None
    finished: bool | None = None
    n_tokens: int | None = None


class Backend(Protocol):
    """What the trials runner needs from a source of responses."""

    name: str  # "local" or "openai"
    model_name: str  # the user-facing model name recorded with every trial

    @property
    def identity(self) -> dict[str, Any]:
        """What the responses depend on (weights, server model); ``identity["key"]`` is a stable short digest."""
        ...

    def render(self, source: PromptSource, *, enable_thinking: bool | None = None) -> str:
        """The exact prompt text sent to the model (recorded with each trial)."""
        ...

    def complete(self, sources: Sequence[PromptSource], *, max_new_tokens: int, temperature: float, top_p: float,
                 seeds: Sequence[int], enable_thinking: bool | None = None) -> list[Completion]:
        """One completion per prompt, prompt ``i`` sampled with ``seeds[i]``."""
        ...


# --------------------------------------------------------------------------------------------------------------------
# OpenAI-compatible HTTP
# --------------------------------------------------------------------------------------------------------------------

_RETRY_STATUS = {429, 500, 502, 503, 504}


class _Retryable(Exception):
    """A failure worth retrying (5xx, 429, timeout, dropped connection); carries the message for the final error."""


def served_model_key(served_model: str, root: str | None = None,
                     control_vector: dict[str, Any] | None = None) -> str:
    """The identity key of a served model: its served name and the server's ``root`` (vLLM: the weights' path or hub
    id), not its URL, so trials resume (and an Inspect run names them the same way) wherever it is served; and the
    control vector it serves with (sha256 and scale), when one is declared."""
    keyed: dict[str, Any] = {"served_model": served_model, "root": root}
    if control_vector:  # only then, so unsteered keys stay those of earlier runs
        keyed["control_vector"] = control_vector
    return hashlib.sha256(json.dumps(keyed).encode()).hexdigest()[:16]


class OpenAIBackend:
    """A model served behind an OpenAI-compatible API (vLLM, llama.cpp server, TGI).

    ``prompt_format="chat"`` sends system + user messages to ``/v1/chat/completions``; ``"document"`` (base models)
    sends the condition's document to ``/v1/completions``. ``api_key`` is sent as a bearer token. Failures that may
    pass (HTTP 5xx/429, timeouts, dropped connections) are retried ``max_retries`` times with exponential backoff
    from ``backoff`` seconds; anything else raises :class:`BackendError` at once.
    """

    name = "openai"

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, timeout: float = 300.0,
                 max_retries: int = 3, backoff: float = 1.0, prompt_format: Literal["chat", "document"] = "chat",
                 max_concurrency: int = 16, control_vector: dict[str, Any] | None = None):
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"--base-url must start with http:// or https://, got {base_url!r}")
        if prompt_format not in ("chat", "document"):
            raise ConfigError(f"prompt_format must be 'chat' or 'document', got {prompt_format!r}")
        base = base_url.rstrip("/")
        # Accept both http://host:8000 and http://host:8000/v1, the two spellings servers document.
        self.base_url = base[:-3] if base.endswith("/v1") else base
        self.model_name = model
        self.api_key = api_key
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.prompt_format = prompt_format
        self.max_concurrency = max_concurrency
        # What the server was started with (e.g. llama.cpp's --control-vector-scaled FILE:SCALE), as the user
        # declares it: the API cannot report it, yet the responses depend on it, so it is part of the identity.
        self.control_vector = dict(control_vector) if control_vector else None
        self._identity: dict[str, Any] | None = None

    # -- HTTP --------------------------------------------------------------------------------------------------------

    def _request_once(self, path: str, payload: dict[str, Any] | None) -> dict[str, Any]:
        url = self.base_url + path
        data = None if payload is None else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(url, data=data, headers=headers, method="GET" if data is None else "POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:500]
            if exc.code in _RETRY_STATUS:
                raise _Retryable(f"HTTP {exc.code} from {url}: {detail}") from None
            hint = {401: " Set the API key (--api-key-env names the variable holding it).",
                    404: f" Check --base-url and that the server serves '{self.model_name}' (GET /v1/models)."}
            raise BackendError(f"HTTP {exc.code} from {url}: {detail}.{hint.get(exc.code, '')}") from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, ConnectionRefusedError):
                raise BackendError(f"connection refused by {self.base_url}: is the server running there? "
                                   "Check --base-url (host and port)") from None
            if isinstance(reason, (TimeoutError, socket.timeout, ConnectionResetError)):
                raise _Retryable(f"{type(reason).__name__} talking to {url}") from None
            raise BackendError(f"cannot reach {url}: {reason}. Check --base-url") from None
        except (TimeoutError, socket.timeout, ConnectionResetError, http.client.HTTPException) as exc:
            # A read that timed out, or a connection dropped mid-response (a server restarting).
            raise _Retryable(f"{type(exc).__name__} talking to {url}: {exc}") from None
        try:
            parsed = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise BackendError(f"{url} returned malformed JSON (first bytes: {body[:120]!r}); is --base-url an "
                               "OpenAI-compatible server?") from None
        if not isinstance(parsed, dict):
            raise BackendError(f"{url} returned JSON {type(parsed).__name__}, expected an object")
        return parsed

    def _request(self, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        for attempt in range(self.max_retries + 1):
            try:
                return self._request_once(path, payload)
            except _Retryable as exc:
                if attempt == self.max_retries:
                    raise BackendError(f"{exc} (gave up after {self.max_retries + 1} attempts)") from None
                delay = self.backoff * 2 ** attempt
                log.warning("%s; retrying in %.1f s (attempt %d of %d)", exc, delay, attempt + 2,
                            self.max_retries + 1)
                time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- Backend API -------------------------------------------------------------------------------------------------

    @property
    def identity(self) -> dict[str, Any]:
        """The served model as the server describes it (``GET /v1/models``); checks that it is served.

        The key digests the served name and the server's ``root`` (vLLM: the weights' path or hub id), not the URL,
        so a run can resume against the same model served elsewhere; with a declared ``control_vector`` (a steered
        server) it digests that too, so steered and unsteered trials, or two vectors or scales, never share a key.
        """
        if self._identity is None:
            listing = self._request("/v1/models")
            entries = listing.get("data")
            if not isinstance(entries, list):
                raise BackendError(f"{self.base_url}/v1/models returned no 'data' list; is this an OpenAI-compatible "
                                   "server?")
            served = {e.get("id"): e for e in entries if isinstance(e, dict)}
            if self.model_name not in served:
                raise BackendError(f"the server at {self.base_url} does not serve '{self.model_name}'; it serves: "
                                   f"{', '.join(map(str, served)) or 'nothing'}. Pass one with --served-model")
            entry = served[self.model_name]
            root = entry.get("root")
            self._identity = {"name": self.model_name, "source": "openai", "location": self.base_url, "root": root,
                              "owned_by": entry.get("owned_by"), "max_model_len": entry.get("max_model_len"),
                              "prompt_format": self.prompt_format, "control_vector": self.control_vector,
                              "key": served_model_key(self.model_name, root, self.control_vector)}
        return self._identity

    def messages(self, source: PromptSource) -> list[dict[str, str]]:
        messages = [{"role": "system", "content": source.system}] if source.system else []
        return messages + [{"role": "user", "content": source.user}]

    def render(self, source: PromptSource, *, enable_thinking: bool | None = None) -> str:
        if self.prompt_format == "document":
            return source.document if source.document is not None else default_document(source)
        return json.dumps(self.messages(source), ensure_ascii=False)

    def _complete_one(self, source: PromptSource, seed: int, sampling: dict[str, Any],
                      enable_thinking: bool | None) -> Completion:
        payload: dict[str, Any] = {"model": self.model_name, "seed": int(seed), "n": 1, **sampling}
        if self.prompt_format == "document":
            payload["prompt"] = self.render(source)
            body = self._request("/v1/completions", payload)
        else:
            payload["messages"] = self.messages(source)
            if enable_thinking is not None:  # vLLM / SGLang pass this to the chat template (Qwen3)
                payload["chat_template_kwargs"] = {"enable_thinking": enable_thinking}
            body = self._request("/v1/chat/completions", payload)
        return _parse_choice(body, chat=self.prompt_format == "chat", url=self.base_url)

    def complete(self, sources: Sequence[PromptSource], *, max_new_tokens: int, temperature: float, top_p: float,
                 seeds: Sequence[int], enable_thinking: bool | None = None) -> list[Completion]:
        if len(seeds) != len(sources):
            raise ConfigError(f"got {len(seeds)} seeds for {len(sources)} prompts; pass one seed per prompt")
        if not sources:
            return []
        sampling = {"max_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p}
        workers = max(1, min(self.max_concurrency, len(sources)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(self._complete_one, s, seed, sampling, enable_thinking)
                       for s, seed in zip(sources, seeds)]
            return [f.result() for f in futures]


def _parse_choice(body: dict[str, Any], *, chat: bool, url: str) -> Completion:
    """The first choice of a completions response, as a :class:`Completion`; malformed bodies raise."""
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        error = body.get("error")
        detail = f": {error}" if error else f"; got keys {sorted(body)}"
        raise BackendError(f"{url} returned no choices{detail}")
    choice = choices[0]
    if chat:
        message = choice.get("message")
        if not isinstance(message, dict):
            raise BackendError(f"{url} returned a chat choice without a 'message' object")
        text = message.get("content")
        # vLLM's reasoning parsers return the deliberation separately; newer versions name it "reasoning".
        reasoning = message.get("reasoning_content") or message.get("reasoning")
    else:
        text = choice.get("text")
        reasoning = None
    if text is not None and not isinstance(text, str):
        raise BackendError(f"{url} returned non-text content ({type(text).__name__})")
    finish = choice.get("finish_reason")
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    return Completion(
        text=text or "",  # content is null when reasoning used every token
        reasoning=reasoning if isinstance(reasoning, str) else None,
        finished=None if finish is None else finish != "length",
        n_tokens=usage.get("completion_tokens"),
    )
