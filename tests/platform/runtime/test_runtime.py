"""Devices, torch-module registry, causal-LM precisions and architectures.

Tests parametrised over ``device`` run on ``cpu`` here and on ``cuda`` where a
GPU exists (select them with ``-k cuda``; bench/device_check.sh does).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from npusuite.platform.engine import LLMScheduler, ModelEngine, SamplingParams
from npusuite.platform.errors import UserError
from npusuite.platform.repository import CorruptModelError, ModelRepository
from npusuite.platform.runtime import DeviceUnavailableError, get_device, load_module
from npusuite.platform.runtime.causal_lm import CausalLM
from npusuite.platform.runtime.reference_models import save_scale

DEVICES = [pytest.param("cpu", id="cpu"),
           pytest.param("cuda", id="cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                   reason="no CUDA device here"))]


def test_device_registry():
    cpu = get_device("cpu")
    assert cpu.name == "cpu" and cpu.dtype_for("fp32") == torch.float32 and cpu.dtype_for("int8") == torch.float32
    with pytest.raises(DeviceUnavailableError, match="unknown device 'tpu'"):
        get_device("tpu")
    with pytest.raises(DeviceUnavailableError, match="bad device index"):
        get_device("cuda:x")
    assert get_device("cuda:1", check=False).name == "cuda:1"
    assert get_device("cuda", check=False).default_dtype == "bfloat16"


@pytest.mark.skipif(importlib.util.find_spec("torch_npu") is not None, reason="torch_npu is installed here")
def test_npu_without_torch_npu_fails_clearly():
    with pytest.raises(DeviceUnavailableError, match="torch_npu is not installed"):
        get_device("npu:0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_gpu_fails_clearly():
    with pytest.raises(DeviceUnavailableError, match="no CUDA device"):
        get_device("cuda")


def test_module_registry_round_trip_and_bad_weights(tmp_path: Path):
    folder = save_scale(tmp_path / "m", 2.5)
    module = load_module(folder)
    assert torch.equal(module(torch.ones(1, 4)), torch.full((1, 4), 2.5))
    (folder / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CorruptModelError, match="cannot load weights"):
        load_module(folder)
    (folder / "module.json").write_text('{"architecture": "nope", "config": {}}')
    with pytest.raises(UserError, match="unknown architecture 'nope'"):
        load_module(folder)


@pytest.mark.parametrize("device", DEVICES)
def test_torch_module_on_device(tmp_path: Path, device: str):
    repo = ModelRepository(tmp_path / "models")
    repo.add("scale", save_scale(tmp_path / "s", 3.0))
    engine = ModelEngine.open("scale", repo.root, follow_alias=False, device=device)
    out = engine.infer({"x": np.ones((5, 4), np.float32)})
    assert out.outputs["y"].shape == (5, 4) and float(out.outputs["y"][0, 0]) == 3.0
    engine.close()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
def test_causal_lm_precisions_generate(tiny_llm_dir: Path, device: str, precision: str):
    lm = CausalLM.load(tiny_llm_dir, device, precision)
    fp32 = CausalLM.load(tiny_llm_dir, device, "fp32")
    if precision == "int8":
        weight = lm.model.model.layers[0].mlp.up_proj.weight
        assert type(weight).__name__ == "AffineQuantizedTensor"  # torchao weight-only int8
        assert lm.memory_bytes < fp32.memory_bytes
    sched = LLMScheduler(lm)
    texts = [sched.submit(lm.encode(p), SamplingParams(max_tokens=8)).result(120) for p in ("the card", "a part")]
    sched.close()
    assert all(reason in ("length", "stop") for _, reason in texts)
    if precision == "fp32" and device == "cpu":  # continuous batching reproduces plain generate exactly
        assert texts[0][0] == lm.decode_ids(lm.generate_offline(["the card"], 8)[0])


def test_deepseek_architecture_serves(tmp_path: Path):
    from npusuite.platform.runtime.tiny_llm import make_tiny_llm

    folder = make_tiny_llm(tmp_path / "ds", arch="deepseek_v3")
    lm = CausalLM.load(folder)
    assert type(lm.model).__name__ == "DeepseekV3ForCausalLM"
    sched = LLMScheduler(lm)
    streams = [sched.submit(lm.encode(p), SamplingParams(max_tokens=6)) for p in ("the card was", "hi there")]
    got = [s.result(120)[0] for s in streams]
    sched.close()
    assert got == [lm.decode_ids(lm.generate_offline([p], 6)[0]) for p in ("the card was", "hi there")]


def test_make_tiny_llm_cli(tmp_path: Path):
    import subprocess
    import sys

    out = tmp_path / "tiny"
    proc = subprocess.run([sys.executable, "-m", "npusuite.platform", "platform", "make-tiny-llm", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= {
        p.name for p in out.iterdir()}
    again = subprocess.run([sys.executable, "-m", "npusuite.platform", "platform", "make-tiny-llm", str(out)],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "not empty" in again.stderr
