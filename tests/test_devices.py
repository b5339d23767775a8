"""activations.devices.check_device: one clear line for a GPU request this torch or machine cannot serve (torch.cuda
monkeypatched to stand for each machine), and load_model refusing before reading any weights."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from activations.devices import DeviceError, check_device
from common.errors import ToolkitError


def machine(monkeypatch, *, cuda: str | None = "12.8", available: bool = True, count: int = 2,
            capability: tuple[int, int] = (9, 0)) -> None:
    monkeypatch.setattr(torch.version, "cuda", cuda)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=None: "Tesla T4")


def test_cpu_torch_says_what_to_install(monkeypatch) -> None:
    machine(monkeypatch, cuda=None, available=False, count=0)
    with pytest.raises(DeviceError, match=r"built without CUDA.*download.pytorch.org/whl/cu128.*run.sh install"):
        check_device("cuda", "bfloat16")
    with pytest.raises(DeviceError, match="built without CUDA"):
        check_device(None, "float32", n_devices=2)


def test_cuda_torch_without_a_visible_gpu(monkeypatch) -> None:
    machine(monkeypatch, available=False, count=0)
    with pytest.raises(DeviceError, match="no GPU is visible.*nvidia-smi"):
        check_device("cuda:0", "float32")


def test_missing_device_index_names_the_ones_that_exist(monkeypatch) -> None:
    machine(monkeypatch, count=2)
    with pytest.raises(DeviceError, match=r"cuda:3 does not exist: this machine has 2 GPU\(s\) \(cuda:0, cuda:1\)"):
        check_device("cuda:3", "float32")
    with pytest.raises(DeviceError, match="--n-devices 4 asks for more GPUs than this machine has"):
        check_device(None, "float32", n_devices=4)
    check_device("cuda:1", "bfloat16")  # exists, Hopper: fine


def test_bfloat16_on_a_pre_ampere_gpu(monkeypatch) -> None:
    machine(monkeypatch, count=1, capability=(7, 5))
    with pytest.raises(DeviceError, match=r"cuda:0 \(Tesla T4, compute capability 7.5\) has no bfloat16.*float16"):
        check_device("cuda", "bfloat16")
    check_device("cuda", "float16")


def test_cpu_and_auto_maps_need_no_gpu(monkeypatch) -> None:
    machine(monkeypatch, cuda=None, available=False, count=0)
    check_device(None, "bfloat16")
    check_device("cpu", "bfloat16")
    check_device(None, "float32", device_map="auto")
    with pytest.raises(DeviceError, match="cannot read --device 'gpu0'"):
        check_device("gpu0", "float32")


def test_load_model_refuses_before_loading(monkeypatch) -> None:
    from activations import models

    machine(monkeypatch, cuda=None, available=False, count=0)
    monkeypatch.setattr(models, "_load_packaged", lambda *a: pytest.fail("weights were read"))
    with pytest.raises(DeviceError):
        models.load_model("smollm2-135m-instruct", device="cuda")


@pytest.mark.skipif(torch.version.cuda is not None, reason="checks the message of a CPU-only torch")
def test_cli_prints_one_line_instead_of_a_traceback() -> None:
    done = subprocess.run([sys.executable, "-m", "experiments.smoke", "--device", "cuda"], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("error: this torch") and "Traceback" not in done.stderr, done.stderr[-2000:]


def test_device_error_is_a_toolkit_error() -> None:
    assert issubclass(DeviceError, ToolkitError)
