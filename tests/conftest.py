"""Shared test fixtures. Keep this file small: fixtures used by one test file belong in that file."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

# The model hub is unreachable from our machines and CI; without this, a test that misses the local cache would wait
# on network timeouts. Set before huggingface_hub is imported, because it reads the variable at import time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def save_tiny(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Factory: save a tiny random model and its tokenizer as a local weights directory (as a hub snapshot would be).

    ``save_tiny(arch, seed=, chat=)`` returns the directory; the same arguments return the same directory.
    """
    made: dict[tuple[str, int, bool], Path] = {}

    def _save(arch: str = "llama", *, seed: int = 0, chat: bool = True) -> Path:
        key = (arch, seed, chat)
        if key not in made:
            from activations.tiny import tiny_hf_model, tiny_tokenizer

            path = tmp_path_factory.mktemp(f"tiny-{arch}-seed{seed}-{'chat' if chat else 'base'}")
            tiny_hf_model(arch, seed=seed, chat=chat).save_pretrained(path)
            tiny_tokenizer(chat).save_pretrained(path)
            made[key] = path
        return made[key]

    return _save


@pytest.fixture
def offline_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty, offline Hugging Face cache and no token: what a fresh machine without hub access looks like.

    huggingface_hub reads these settings at import time, so the module constants are patched as well as the
    environment. Returns the (empty) HF_HOME.
    """
    from huggingface_hub import constants

    home = tmp_path / "hf-home"
    hub_cache = home / "hub"
    hub_cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache))
    return home
