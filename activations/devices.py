"""Check a requested device and dtype before any weights are read, so a GPU mistake is one line, not a traceback.

:func:`check_device` is called by :func:`activations.models.load_model`, which every entry point loads through
(``--device``, ``--device-map``, ``--n-devices``, ``--dtype``). Without it, ``--device cuda`` on a CPU-only torch fails
deep in torch with ``AssertionError: Torch not compiled with CUDA enabled``, a missing ``cuda:3`` with an
``invalid device ordinal`` from the first kernel, and bfloat16 on a pre-Ampere GPU runs emulated or fails per op.
"""

from __future__ import annotations

import torch

from common.errors import ConfigError

__all__ = ["DeviceError", "check_device", "CUDA_HELP"]

#: Where the CUDA install is documented (the README's override, repeated in docs/models-and-scale.md).
CUDA_HELP = ("install the CUDA build of the same torch into the environment, e.g. `.venv/bin/pip install "
             "torch=={version} --index-url https://download.pytorch.org/whl/cu128`, then `bash run.sh install` keeps "
             "it (README: 'GPUs, large models and downloaded weights'; docs/models-and-scale.md: 'GPU install')")


class DeviceError(ConfigError):
    """A device or dtype this machine's torch cannot use."""


def _torch_version() -> str:
    return torch.__version__.split("+")[0]


def check_device(device: str | None, dtype: str, *, device_map: str | dict | None = None,
                 n_devices: int | None = None) -> None:
    """Raise :class:`DeviceError` (one line, saying what to do) unless ``device``/``device_map``/``n_devices`` and
    ``dtype`` can be used here. ``device`` None means the CPU (or the device map's choice)."""
    # --device-map auto/balanced/sequential place on whatever exists (the CPU too); cuda:N or several devices need GPUs.
    # A dict map names a device per module: any cuda:N or bare GPU index in it needs a GPU.
    targets = [str(v) for v in device_map.values()] if isinstance(device_map, dict) else [str(device_map or "")]
    wants_cuda = (device is not None and device.strip().lower().startswith("cuda")) or (n_devices or 1) > 1 or any(
        t.strip().lower().startswith("cuda") or t.strip().isdigit() for t in targets)
    if device is not None:
        try:
            parsed = torch.device(device)
        except (RuntimeError, ValueError) as exc:
            raise DeviceError(f"cannot read --device {device!r} ({exc}); use cpu, cuda, cuda:N or mps") from exc
    else:
        parsed = None
    if parsed is not None and parsed.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError("--device mps needs Apple silicon with a torch built for it; use --device cpu here")
    if wants_cuda or (parsed is not None and parsed.type == "cuda"):
        _check_cuda(parsed, dtype, n_devices)


def _check_cuda(parsed: torch.device | None, dtype: str, n_devices: int | None) -> None:
    if torch.version.cuda is None:
        raise DeviceError(f"this torch ({torch.__version__}) was built without CUDA, so it cannot use a GPU: "
                          + CUDA_HELP.format(version=_torch_version()))
    if not torch.cuda.is_available():
        raise DeviceError(f"torch {torch.__version__} has CUDA {torch.version.cuda}, but no GPU is visible: check "
                          "`nvidia-smi` (driver installed and new enough for this CUDA) and CUDA_VISIBLE_DEVICES")
    count = torch.cuda.device_count()
    if n_devices is not None and n_devices > count:
        raise DeviceError(f"--n-devices {n_devices} asks for more GPUs than this machine has ({count}); "
                          f"pass --n-devices {count} or fewer")
    index = parsed.index if parsed is not None and parsed.index is not None else 0
    if index >= count:
        available = ", ".join(f"cuda:{i}" for i in range(count))
        raise DeviceError(f"cuda:{index} does not exist: this machine has {count} GPU(s) ({available})")
    if dtype == "bfloat16":
        major, minor = torch.cuda.get_device_capability(index)
        if major < 8:  # bfloat16 arithmetic needs compute capability 8.0 (Ampere) or newer
            name = torch.cuda.get_device_name(index)
            raise DeviceError(f"cuda:{index} ({name}, compute capability {major}.{minor}) has no bfloat16 support; "
                              "use --dtype float16 (half the memory of float32) or --dtype float32")
