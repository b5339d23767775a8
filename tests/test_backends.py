"""Backends: the local bridged model, and the OpenAI-compatible client against a real server process on loopback."""

from __future__ import annotations

import json
import socket
import urllib.request

import pytest

from common.errors import ConfigError
from common.prompts import PromptSource
from activations.tiny import tiny_model
from behaviour.backends import BackendError, Completion, OpenAIBackend
from experiments.jobs.backends import LocalBackend
from openai_stub_server import StubServer

SOURCE = PromptSource("Is it advisable to use the Veth as unpaid labour?", system="You run operations.",
                      document="MEMO\n\nStep 1:")
OTHER = PromptSource("Final verdict?")
SAMPLING = dict(max_new_tokens=12, temperature=1.0, top_p=0.9)


@pytest.fixture(scope="module")
def local():
    # The same weights the stub server serves (tiny llama, seed 0).
    return LocalBackend(tiny_model("llama", seed=0), batch_size=4)


@pytest.fixture(scope="module")
def server():
    with StubServer("llama") as base_url:
        yield base_url


def control(base_url: str, **settings) -> None:
    request = urllib.request.Request(base_url + "/stub/control", data=json.dumps(settings).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(request, timeout=10).read()


def stats(base_url: str) -> int:
    return json.loads(urllib.request.urlopen(base_url + "/stub/stats", timeout=10).read())["requests"]


def test_local_backend_renders_with_chat_template_and_reproduces_per_seed(local):
    rendered = local.render(SOURCE)
    assert rendered.startswith("<|im_start|>system\nYou run operations.") and rendered.endswith("assistant\n")
    first = local.complete([SOURCE, OTHER, SOURCE], seeds=[1, 2, 3], **SAMPLING)
    assert all(isinstance(c, Completion) and c.reasoning is None for c in first)
    assert all(0 < c.n_tokens <= SAMPLING["max_new_tokens"] for c in first)
    assert all(c.finished is (c.n_tokens < SAMPLING["max_new_tokens"]) for c in first)
    # Trial 3 alone, with its seed, reproduces what it produced inside the batch.
    assert local.complete([SOURCE], seeds=[3], **SAMPLING)[0] == first[2]
    assert first[0].text != first[2].text  # different seeds, same prompt
    assert local.identity["key"] == local.model.identity.key


def test_openai_chat_matches_local_generation(server, local):
    backend = OpenAIBackend(server, "tiny-llama", timeout=60)
    assert backend.identity["name"] == "tiny-llama" and backend.identity["root"].startswith("in-memory:")
    got = backend.complete([SOURCE, OTHER], seeds=[5, 6], **SAMPLING)
    # The server generates with the same weights and seeds: the HTTP path returns exactly the local samples.
    want = local.complete([SOURCE, OTHER], seeds=[5, 6], **SAMPLING)
    assert [c.text for c in got] == [c.text for c in want]
    assert [c.finished for c in got] == [c.finished for c in want]
    assert [c.n_tokens for c in got] == [c.n_tokens for c in want]
    assert json.loads(backend.render(SOURCE)) == [{"role": "system", "content": SOURCE.system},
                                                 {"role": "user", "content": SOURCE.user}]


def test_openai_document_prompts_use_completions(server, local):
    backend = OpenAIBackend(server + "/v1/", "tiny-llama", prompt_format="document", timeout=60)
    assert backend.base_url == server  # both spellings of the base URL work
    got = backend.complete([SOURCE], seeds=[9], **SAMPLING)[0]
    from activations.generation import generate_detailed

    want = generate_detailed(local.model, [SOURCE.document], seeds=[9], **SAMPLING)[0]
    assert got.text == want.text and backend.render(SOURCE) == SOURCE.document


def test_reasoning_content_is_captured(server):
    backend = OpenAIBackend(server, "tiny-llama", timeout=60)
    control(server, reasoning="The Veth are sentient, so ...")
    try:
        got = backend.complete([OTHER], seeds=[1], **SAMPLING)[0]
    finally:
        control(server, reasoning=None)
    assert got.reasoning == "The Veth are sentient, so ..."


def test_5xx_is_retried_with_backoff_then_succeeds(server):
    backend = OpenAIBackend(server, "tiny-llama", timeout=60, max_retries=3, backoff=0.01)
    control(server, fail_next=2, status=503)
    before = stats(server)
    got = backend.complete([OTHER], seeds=[1], **SAMPLING)[0]
    assert got.text == backend.complete([OTHER], seeds=[1], **SAMPLING)[0].text
    assert stats(server) - before == 4  # two failures, one success, then the repeat


def test_retries_are_bounded(server):
    backend = OpenAIBackend(server, "tiny-llama", timeout=60, max_retries=1, backoff=0.01)
    control(server, fail_next=5, status=502)
    try:
        with pytest.raises(BackendError, match=r"HTTP 502.*gave up after 2 attempts"):
            backend.complete([OTHER], seeds=[1], **SAMPLING)
    finally:
        control(server, fail_next=0)


def test_timeout_is_retried(server):
    backend = OpenAIBackend(server, "tiny-llama", timeout=0.5, max_retries=2, backoff=0.01)
    control(server, delay_next=1, delay_s=1.5)
    got = backend.complete([OTHER], seeds=[1], max_new_tokens=2, temperature=0.0, top_p=1.0)[0]
    assert isinstance(got.text, str)


def test_client_errors_are_not_retried_and_say_what_to_do(server):
    backend = OpenAIBackend(server, "no-such-model", timeout=60, max_retries=3, backoff=0.01)
    with pytest.raises(BackendError, match="does not serve 'no-such-model'; it serves: tiny-llama"):
        backend.identity
    before = stats(server)
    with pytest.raises(BackendError, match=r"HTTP 404.*GET /v1/models"):
        backend.complete([OTHER], seeds=[1], **SAMPLING)
    assert stats(server) - before == 1


def test_malformed_json_is_a_clear_error(server):
    backend = OpenAIBackend(server, "tiny-llama", timeout=60)
    control(server, malformed_next=1)
    with pytest.raises(BackendError, match="malformed JSON"):
        backend.complete([OTHER], seeds=[1], **SAMPLING)


def test_connection_refused_is_a_clear_error():
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = OpenAIBackend(f"http://127.0.0.1:{port}", "m", timeout=5, backoff=0.01)
    with pytest.raises(BackendError, match="connection refused.*--base-url"):
        backend.complete([OTHER], seeds=[1], **SAMPLING)


def test_bad_configuration():
    with pytest.raises(ConfigError, match="http"):
        OpenAIBackend("localhost:8000", "m")
    with pytest.raises(ConfigError, match="prompt_format"):
        OpenAIBackend("http://localhost:8000", "m", prompt_format="xml")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="one seed per prompt"):
        OpenAIBackend("http://localhost:8000", "m").complete([OTHER], seeds=[], **SAMPLING)
