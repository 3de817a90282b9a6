"""OpenVINO as the engine of an ONNX folder's variant: torch's numbers at f32, the bf16 variant where the CPU has
it, chosen by onnx.json, and hostile graphs or settings refused in one line."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from npusuite.platform.repository import resolve_reference
from npusuite.platform.repository.manifest import CorruptModelError
from npusuite.platform.runtime.devices import DeviceUnavailableError, get_device
from npusuite.platform.runtime.onnx_runtime import ONNX_FILE, OnnxModule, read_info, write_info
from npusuite.platform.runtime.openvino_session import OpenVinoSession, capabilities, supports
from npusuite.platform.runtime.servable import load_version
from tests.platform.runtime.test_onnx_runtime import _onnx_folder

needs_bf16 = pytest.mark.skipif(not supports("bf16"),
                                reason="this CPU offers no bf16 to OpenVINO (needs AMX or AVX512-BF16)")


def _x(n: int = 4) -> np.ndarray:
    return np.random.default_rng(1).random((n, 3, 8, 8), dtype=np.float32)


def test_openvino_at_f32_gives_torchs_numbers_and_the_onnx_runtime_calling_convention(tmp_path):
    folder, net = _onnx_folder(tmp_path / "m")
    module = OnnxModule(folder / ONNX_FILE, get_device("cpu"), 1, read_info(folder), precision="fp32",
                        engine="openvino")
    assert isinstance(module.session, OpenVinoSession) and module.input_names == ["image"]
    x = _x()
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    (out,) = module.outputs(x, ["prob"])
    assert out.shape == (4, 1, 8, 8) and np.abs(out - ref).max() < 1e-5
    # outputs are the caller's: the next call must not overwrite them through OpenVINO's reused buffers
    kept = out.copy()
    module.outputs(np.zeros_like(x), ["prob"])
    assert np.array_equal(out, kept)
    assert torch.allclose(module(torch.from_numpy(x)), torch.from_numpy(ref), atol=1e-5)
    assert "FP32" in capabilities()


def test_one_openvino_module_serves_several_threads_without_mixing_their_outputs(tmp_path):
    folder, net = _onnx_folder(tmp_path / "m")
    module = OnnxModule(folder / ONNX_FILE, get_device("cpu"), 1, read_info(folder), precision="fp32",
                        engine="openvino")
    inputs = [np.full((1, 3, 8, 8), v, np.float32) for v in np.linspace(0, 1, 8)]
    with torch.no_grad():
        want = [net(torch.from_numpy(x)).numpy() for x in inputs]
    got: dict[int, list] = {i: [] for i in range(len(inputs))}

    def work(i: int) -> None:
        for _ in range(25):
            got[i].append(module.outputs(inputs[i], ["prob"])[0])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, outs in got.items():
        assert all(np.abs(o - want[i]).max() < 1e-5 for o in outs)


@needs_bf16
def test_the_bf16_variant_is_chosen_by_onnx_json_and_runs_on_openvino(tmp_path):
    folder, net = _onnx_folder(tmp_path / "m")
    info = read_info(folder)
    info.variants["bf16"] = ONNX_FILE
    info.engines["bf16"] = "openvino"
    write_info(folder, info)
    fp32 = load_version(resolve_reference(folder), "cpu").module
    assert fp32.engine == "onnxruntime" and fp32.precision == "fp32"
    bf16 = fp32.variant("bf16")
    assert bf16.engine == "openvino" and bf16.precision == "bf16"
    assert bf16.session.get_providers() == ["OpenVINO CPU (bf16)"]
    x = _x()
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    (out,) = bf16.outputs(x, ["prob"])
    # bf16 keeps 8 bits of mantissa: close to torch, and not bit-equal (it really is computing in bf16)
    assert np.abs(out - ref).max() < 2e-2 and not np.array_equal(out, ref)


def test_onnx_json_engines_that_cannot_hold_are_refused(tmp_path):
    folder, _ = _onnx_folder(tmp_path / "m")
    info = read_info(folder)
    info.engines["bf16"] = "openvino"  # no bf16 variant
    write_info(folder, info)
    with pytest.raises(CorruptModelError, match="not one of its variants"):
        read_info(folder)
    info.engines = {"fp16": "openvino"}
    info.variants["fp16"] = "model.fp16.onnx"
    write_info(folder, info)
    with pytest.raises(CorruptModelError, match="fp32, bf16 or int8"):
        read_info(folder)
    info.engines, info.variants = {"int8": "openvino"}, {"fp32": ONNX_FILE, "int8": "model.int8.onnx"}
    write_info(folder, info)
    assert read_info(folder).engines == {"int8": "openvino"}  # an int8 QDQ graph for OpenVINO is allowed
    info.engines, info.variants = {}, {"fp32": ONNX_FILE, "bf16": ONNX_FILE}  # bf16 left to ONNX Runtime
    write_info(folder, info)
    with pytest.raises(CorruptModelError, match="bf16 variant runs on OpenVINO"):
        read_info(folder)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
@pytest.mark.parametrize("payload", [b"", b"not a graph at all \x00\x01\x02", b"\x08\x07\x12\x03abc" * 50])
def test_a_corrupt_graph_is_refused_by_openvino_in_one_line(tmp_path, payload, precision):
    if not supports(precision):
        pytest.skip(f"this CPU offers no {precision} to OpenVINO")
    path = tmp_path / ONNX_FILE
    path.write_bytes(payload)
    with pytest.raises(CorruptModelError) as err:
        OpenVinoSession(path, get_device("cpu"), precision)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_a_graph_with_external_data_is_not_followed(tmp_path, monkeypatch):
    import onnx

    folder, _ = _onnx_folder(tmp_path / "m")
    model = onnx.load(str(folder / ONNX_FILE))
    onnx.save_model(model, str(folder / ONNX_FILE), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    assert (folder / "weights.bin").is_file()
    monkeypatch.chdir(folder)  # not even a file beside it, found through the working directory, is read
    with pytest.raises(CorruptModelError, match="OpenVINO cannot load it"):
        OpenVinoSession(folder / ONNX_FILE, get_device("cpu"))


def test_openvino_settings_it_cannot_honour_are_refused(tmp_path):
    folder, _ = _onnx_folder(tmp_path / "m")
    with pytest.raises(DeviceUnavailableError, match="cpu device"):
        OpenVinoSession(folder / ONNX_FILE, SimpleNamespace(kind="cuda", name="cuda:0"))
    with pytest.raises(DeviceUnavailableError, match="precision 'fp16'"):
        OpenVinoSession(folder / ONNX_FILE, get_device("cpu"), "fp16")
    with pytest.raises(CorruptModelError, match="missing"):
        OpenVinoSession(folder / "nope.onnx", get_device("cpu"))


def test_a_graph_over_the_size_limit_is_refused_before_it_is_read(tmp_path, monkeypatch):
    from npusuite.platform.runtime import onnx_runtime

    folder, _ = _onnx_folder(tmp_path / "m")
    monkeypatch.setattr(onnx_runtime, "MAX_ONNX_BYTES", 100)
    with pytest.raises(CorruptModelError, match="over the 100-byte limit"):
        OpenVinoSession(folder / ONNX_FILE, get_device("cpu"))
