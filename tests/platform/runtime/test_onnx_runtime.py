"""The ONNX Runtime runtime: chosen by model.onnx in the folder, same tensor contract as torch, served over HTTP,
providers from the device class, and hostile graphs refused in one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from torch import nn

from npusuite.platform.errors import UserError
from npusuite.platform.repository import ModelRepository, resolve_reference
from npusuite.platform.repository.manifest import CorruptModelError
from npusuite.platform.runtime.devices import DeviceUnavailableError, get_device
from npusuite.platform.runtime.onnx_runtime import (
    INFO_FILE,
    ONNX_FILE,
    OnnxInfo,
    OnnxModule,
    OnnxServable,
    providers_for,
    read_info,
    write_info,
)
from npusuite.platform.runtime.servable import load_version


class Affine(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 3, padding=1)

    def forward(self, x):
        return torch.sigmoid(self.conv(x))


def _onnx_folder(folder: Path) -> tuple[Path, nn.Module]:
    torch.manual_seed(0)
    net = Affine().eval()
    folder.mkdir(parents=True)
    torch.onnx.export(net, (torch.rand(2, 3, 8, 8),), str(folder / ONNX_FILE), dynamo=False, opset_version=17,
                      input_names=["image"], output_names=["prob"],
                      dynamic_axes={"image": {0: "batch"}, "prob": {0: "batch"}})
    write_info(folder, OnnxInfo(inputs=[{"name": "image", "shape": [-1, 3, 8, 8]}],
                                outputs=[{"name": "prob", "shape": [-1, 1, 8, 8]}]))
    return folder, net


def test_a_folder_with_model_onnx_loads_on_onnx_runtime_and_matches_torch(tmp_path):
    folder, net = _onnx_folder(tmp_path / "m")
    version = resolve_reference(folder)
    assert version.manifest.kind == "onnx" and version.manifest.framework == "onnxruntime"
    runtime = load_version(version, "cpu")
    assert isinstance(runtime, OnnxServable) and isinstance(runtime.module, OnnxModule)
    x = np.random.default_rng(0).random((5, 3, 8, 8), dtype=np.float32)  # batch 5: the batch axis is dynamic
    out = runtime.predict(runtime.validate({"image": x}))["prob"]
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    assert out.shape == (5, 1, 8, 8) and np.abs(out - ref).max() < 1e-5
    # the module is callable like the torch module (apps that run runtime.module directly)
    assert torch.allclose(runtime.module(torch.from_numpy(x)), torch.from_numpy(ref), atol=1e-5)
    with pytest.raises(UserError, match="shape"):
        runtime.validate({"image": np.zeros((1, 3, 9, 8), np.float32)})
    with pytest.raises(UserError, match="no int8 ONNX graph"):
        runtime.module.variant("int8")


def test_onnx_versions_serve_over_kserve_http(tmp_path, serve):
    from npusuite.platform.engine import ModelManager
    from npusuite.platform.serving.metrics import PlatformMetrics

    folder, net = _onnx_folder(tmp_path / "src")
    repo = ModelRepository(tmp_path / "models")
    repo.add("edge-conv", folder)
    manager = ModelManager(repo, observer=PlatformMetrics())
    manager.start()
    x = np.linspace(0, 1, 2 * 3 * 8 * 8, dtype=np.float32).reshape(2, 3, 8, 8)
    with serve(manager) as url:
        meta = httpx.get(f"{url}/v2/models/edge-conv", timeout=30).json()
        assert meta["inputs"][0]["name"] == "image" and meta["platform"]
        body = {"inputs": [{"name": "image", "datatype": "FP32", "shape": list(x.shape), "data": x.ravel().tolist()}]}
        resp = httpx.post(f"{url}/v2/models/edge-conv/infer", json=body, timeout=60)
        assert resp.status_code == 200, resp.text
        out = np.asarray(resp.json()["outputs"][0]["data"], np.float32).reshape(2, 1, 8, 8)
        with torch.no_grad():
            assert np.abs(out - net(torch.from_numpy(x)).numpy()).max() < 1e-5
        bad = {"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 3, 4, 4], "data": [0.0] * 48}]}
        resp = httpx.post(f"{url}/v2/models/edge-conv/infer", json=bad, timeout=60)
        assert resp.status_code == 400 and "shape" in resp.json()["error"]


def test_providers_follow_the_device_class():
    assert providers_for(get_device("cpu")) == ["CPUExecutionProvider"]
    import onnxruntime as ort

    for kind, provider, package in (("cuda", "CUDAExecutionProvider", "onnxruntime-gpu"),
                                    ("npu", "CANNExecutionProvider", "onnxruntime-cann")):
        device = get_device(kind, check=False)
        if provider in ort.get_available_providers():
            assert providers_for(device)[0] == provider
        else:  # this build has no such provider: a one-line refusal naming the package, no silent CPU fall-back
            with pytest.raises(DeviceUnavailableError, match=package):
                providers_for(device)


@pytest.mark.parametrize("payload", [b"", b"not a protobuf at all \x00\xff" * 50, b"\x08\x07" + b"\xff" * 4000])
def test_a_corrupt_graph_is_refused_as_a_corrupt_model(tmp_path, payload):
    folder, _ = _onnx_folder(tmp_path / "m")
    (folder / ONNX_FILE).write_bytes(payload)
    with pytest.raises(CorruptModelError, match="ONNX Runtime cannot load it"):
        load_version(resolve_reference(folder), "cpu")


def test_a_truncated_graph_and_bad_onnx_json_are_refused(tmp_path):
    folder, _ = _onnx_folder(tmp_path / "m")
    data = (folder / ONNX_FILE).read_bytes()
    (folder / ONNX_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptModelError):
        load_version(resolve_reference(folder), "cpu")
    folder2, _ = _onnx_folder(tmp_path / "m2")
    (folder2 / INFO_FILE).write_text("{not json")
    with pytest.raises(CorruptModelError, match="unreadable"):
        resolve_reference(folder2)
    (folder2 / INFO_FILE).unlink()
    with pytest.raises(CorruptModelError, match="without onnx.json"):
        resolve_reference(folder2)
    # a variant may not point outside the folder
    info = {"inputs": [{"name": "image"}], "outputs": [{"name": "prob"}],
            "variants": {"fp32": ONNX_FILE, "int8": "../../etc/passwd.onnx"}}
    (folder2 / INFO_FILE).write_text(json.dumps(info))
    with pytest.raises(CorruptModelError, match="in the folder itself"):
        resolve_reference(folder2)
    # an optimisation level ONNX Runtime does not have is refused, not passed on
    info = {"inputs": [{"name": "image"}], "outputs": [{"name": "prob"}], "optimization": {"fp32": "ludicrous"}}
    (folder2 / INFO_FILE).write_text(json.dumps(info))
    with pytest.raises(CorruptModelError, match="unreadable"):
        resolve_reference(folder2)


def test_each_variant_opens_at_the_optimisation_level_onnx_json_names(tmp_path):
    folder, _ = _onnx_folder(tmp_path / "m")
    info = read_info(folder)
    shutil.copy2(folder / ONNX_FILE, folder / "model.int8.onnx")
    info.variants["int8"] = "model.int8.onnx"
    info.optimization["int8"] = "extended"
    write_info(folder, info)
    fp32 = OnnxModule(folder / ONNX_FILE, get_device("cpu"), 1, read_info(folder))
    assert fp32.optimization == "all" and fp32.variant("int8").optimization == "extended"
    assert OnnxModule(folder / "model.int8.onnx", get_device("cpu"), 1).optimization == "all"  # no info: default


def test_cann_and_cuda_providers_are_requested_with_their_device_ids(monkeypatch):
    """On paper only: this onnxruntime build has neither provider, so availability is faked to check what the
    runtime would ask ONNX Runtime for on an Ascend (npu) or CUDA host."""
    import onnxruntime as ort

    from npusuite.platform.runtime import onnx_runtime

    monkeypatch.setattr(ort, "get_available_providers",
                        lambda: ["CANNExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])
    npu = get_device("npu:1", check=False)
    assert providers_for(npu) == ["CANNExecutionProvider", "CPUExecutionProvider"]
    assert onnx_runtime._provider_options(npu)[0]["device_id"] == 1
    cuda = get_device("cuda:0", check=False)
    assert providers_for(cuda) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert onnx_runtime._provider_options(cuda) == [{"device_id": 0}, {}]
