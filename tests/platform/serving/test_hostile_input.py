"""Hostile requests over real HTTP: each is refused with a JSON 4xx in its API's shape (or served),
no request fails another's, nothing leaks an exception type, nothing answers a bare NaN."""

from __future__ import annotations

import json
import socket
import struct
import threading
from pathlib import Path

import httpx
import pytest

from npusuite.platform.engine import LLMConfig, ModelManager
from npusuite.platform.repository import ModelRepository
from npusuite.platform.serving.metrics import PlatformMetrics

X = {"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}


def _manager(repo, **llm) -> ModelManager:
    m = ModelManager(repo, llm=LLMConfig(**llm) if llm else None, observer=PlatformMetrics())
    m.start()
    return m


def _post(url: str, path: str, body: bytes | dict, **kw) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(url + path, content=content, headers={"content-type": "application/json", **kw.pop(
        "headers", {})}, timeout=kw.pop("timeout", 60), **kw)


def _assert_oip_error(r: httpx.Response, status: int, fragment: str = "") -> None:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert isinstance(body["error"], str) and fragment in body["error"], body
    assert "Error:" not in body["error"] and "Traceback" not in body["error"]


@pytest.fixture
def llm_repo(tmp_path: Path, tiny_llm_dir: Path):
    from npusuite.platform.runtime.reference_models import save_fail, save_scale

    repo = ModelRepository(tmp_path / "models")
    repo.add("scale", save_scale(tmp_path / "s1", 1.0))
    repo.add("scale", save_scale(tmp_path / "s2", 2.0))
    repo.add("fail", save_fail(tmp_path / "f"))
    repo.add("tiny-llm", tiny_llm_dir)
    return repo


def _long_generation(url: str, out: dict) -> threading.Thread:
    """A concurrent KServe generation that is running while the hostile requests arrive."""
    def run():
        out["r"] = _post(url, "/v2/models/tiny-llm/infer", {
            "inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["the card was"]}],
            "parameters": {"max_tokens": 300, "temperature": 0.8, "seed": 1}}, timeout=120)
    t = threading.Thread(target=run)
    t.start()
    return t


@pytest.mark.parametrize("params, status, field", [
    ({"temperature": 1e-45}, 200, None),      # issue 12.1: "probability tensor contains inf/nan" in the step
    ({"temperature": 0.7, "top_p": 5e-324}, 200, None),  # an empty nucleus
    ({"temperature": 0.7, "seed": 2**70}, 400, "seed"),  # "Overflow when unpacking long long" in the step
    ({"temperature": "NaN"}, 400, "temperature"),
    ({"temperature": 3.5}, 400, "temperature"),
    ({"max_tokens": 1e9}, 400, "max_tokens"),    # issue 12.4: no cap
    ({"max_tokens": 0}, 400, "max_tokens"),
])
def test_kserve_sampling_parameters_fail_only_their_own_request(serve, llm_repo, params, status, field):
    with serve(_manager(llm_repo)) as url:
        other: dict = {}
        t = _long_generation(url, other)
        r = _post(url, "/v2/models/tiny-llm/infer", {
            "inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": ["hi", "a part"]}],
            "parameters": {"max_tokens": 4, **params}})
        if status == 200:
            assert r.status_code == 200, r.text
            assert len(r.json()["outputs"][0]["data"]) == 2
        else:
            _assert_oip_error(r, status, field)
        t.join(120)
        assert other["r"].status_code == 200, other["r"].text


def test_kserve_nan_literal_temperature_is_400(serve, llm_repo):
    with serve(_manager(llm_repo)) as url:
        r = _post(url, "/v2/models/tiny-llm/infer", b'{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1],'
                                                    b' "data": ["hi"]}], "parameters": {"temperature": NaN}}')
        _assert_oip_error(r, 400, "NaN")


@pytest.mark.parametrize("field, value", [("temperature", 1e-45), ("top_p", 5e-324), ("seed", 2**70),
                                          ("temperature", 9.0), ("max_tokens", 10**9), ("max_tokens", None)])
def test_openai_sampling_fields_are_checked_at_the_door(serve, llm_repo, field, value):
    with serve(_manager(llm_repo)) as url:
        other: dict = {}
        t = _long_generation(url, other)
        body = {"model": "tiny-llm", "prompt": "the card", "max_tokens": 4, "temperature": 0.5, field: value}
        r = _post(url, "/v1/completions", body)
        if (field, value) in (("temperature", 1e-45), ("top_p", 5e-324), ("max_tokens", None)):
            assert r.status_code == 200, r.text
        else:
            assert r.status_code == 400, r.text
            err = r.json()["error"]
            assert set(err) == {"message", "type", "param", "code"} and err["type"] == "invalid_request_error"
            assert err["param"] == field, err
        t.join(120)
        assert other["r"].status_code == 200, other["r"].text


@pytest.mark.parametrize("body, fragment", [
    ({"inputs": [{**X, "datatype": "INT8", "data": [1000, 1, 2, 3]}]}, "INT8 data must be integers"),
    ({"inputs": [X], "parameters": [1]}, "field 'parameters'"),
    ({"inputs": [X], "outputs": [{"name": "y", "parameters": "x"}]}, "field 'outputs.0.parameters'"),
    ({"inputs": [{**X, "data": [None, 1, 2, 3]}]}, "FP32 data must be numbers"),  # issue 12.9: null as NaN
    ({"inputs": [{**X, "data": [1e39, 1, 2, 3]}]}, "finite"),  # overflows FP32 to inf
    ({"inputs": [{**X, "data": [True, 1, 2, 3]}]}, "must be numbers"),
    ({"inputs": [{**X, "data": {"a": 1}}]}, "must be numbers"),
    ({"inputs": [{**X, "shape": [-1, 4]}]}, "field 'inputs.0.shape.0'"),
    ({"inputs": [X], "outputs": [{"name": "nope"}]}, "unknown output"),
    ({"inputs": [X], "parameters": {"deadline_ms": -5}}, "deadline_ms"),
    ({"inputs": [X, X]}, "given twice"),
    ({"inputs": "x"}, "field 'inputs'"),
])
def test_malformed_kserve_bodies_are_json_400(serve, llm_repo, body, fragment):
    """Issue 12.8: each of these gave a text/plain 500 or a leaked exception type."""
    with serve(_manager(llm_repo)) as url:
        _assert_oip_error(_post(url, "/v2/models/scale/infer", body), 400, fragment)
        assert _post(url, "/v2/models/scale/infer", {"inputs": [X]}).status_code == 200


def test_deep_nesting_is_400_on_every_body(serve, admin_headers, llm_repo):
    deep = b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with serve(_manager(llm_repo)) as url:
        _assert_oip_error(_post(url, "/v2/models/scale/infer", deep), 400, "nested")
        _assert_oip_error(_post(url, "/v2/repository/models/scale/load", deep, headers=admin_headers), 400, "nested")
        r = _post(url, "/v1/chat/completions", b'{"model": "tiny-llm", "messages": ' + b"[" * 100_000 + b"]" * 100_000
                  + b"}")
        assert r.status_code == 400 and "nested" in r.json()["error"]["message"]


def test_body_over_the_limit_is_413(llm_repo):
    import asyncio

    from npusuite.platform.serving.app import create_app

    manager = _manager(llm_repo)
    app = create_app(manager, manager.observer, max_body_bytes=4096)

    async def go() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as client:
            big = {"inputs": [{**X, "shape": [1000, 4], "data": [1.0] * 4000}]}
            async def chunks():  # no Content-Length: refused while reading
                for _ in range(10):
                    yield b"x" * 1024
            return (await client.post("/v2/models/scale/infer", json=big),
                    await client.post("/v1/completions", content=chunks()),
                    await client.post("/v2/models/scale/infer", json={"inputs": [X]}))

    try:
        oip, openai, ok = asyncio.run(go())
    finally:
        manager.close()
    _assert_oip_error(oip, 413, "limit of 4096 bytes")
    assert openai.status_code == 413 and "limit" in openai.json()["error"]["message"]
    assert ok.status_code == 200


def test_bytes_length_prefix_past_the_data_is_400(serve, llm_repo):
    """Issue 12.9: the element was silently truncated."""
    raw = struct.pack("<I", 50) + b"only ten b"
    header = json.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1],
                                     "parameters": {"binary_data_size": len(raw)}}]}).encode()
    with serve(_manager(llm_repo)) as url:
        r = httpx.post(f"{url}/v2/models/tiny-llm/infer", content=header + raw, timeout=60,
                       headers={"Inference-Header-Content-Length": str(len(header))})
        _assert_oip_error(r, 400, "runs past the end")


def test_non_finite_outputs_never_reach_json(serve, admin_headers, llm_repo):
    with serve(_manager(llm_repo)) as url:
        assert _post(url, "/v2/repository/models/scale/load", {"parameters": {"version": "2"}},
                     headers=admin_headers).status_code == 200
        big = {"inputs": [{**X, "data": [3e38, 1, 2, 3]}]}  # v2 doubles it: +inf in FP32
        r = _post(url, "/v2/models/scale/infer", big)
        _assert_oip_error(r, 422, "binary_data")
        json.loads(r.text, parse_constant=lambda c: pytest.fail(f"bare {c} in the answer"))
        binary = _post(url, "/v2/models/scale/infer", {**big, "outputs": [{"name": "y",
                                                                           "parameters": {"binary_data": True}}]})
        assert binary.status_code == 200
        n = int(binary.headers["Inference-Header-Content-Length"])
        assert struct.unpack("<f", binary.content[n:n + 4])[0] == float("inf")


def test_unexpected_model_error_is_a_generic_json_500(serve, llm_repo, caplog):
    with serve(_manager(llm_repo)) as url:
        r = _post(url, "/v2/models/fail/infer", {"inputs": [{**X, "data": [-1, 1, 2, 3]}]})
        _assert_oip_error(r, 500, "internal server error")
        assert "KeyError" not in r.text and "internal detail" not in r.text
        assert _post(url, "/v2/models/fail/infer", {"inputs": [X]}).status_code == 200


def _raw_post(url: str, path: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, bytes]:
    """POST with the path sent exactly as given (httpx would normalise '..')."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
                  f"{head}\r\n".encode() + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[1]


def test_model_names_cannot_leave_the_model_root(serve, admin_headers, llm_repo, tmp_path: Path):
    """Issue 12.6: POST /v2/repository/models/../load loaded and served a folder outside --model-root."""
    from npusuite.platform.runtime.reference_models import save_scale

    outside = ModelRepository(tmp_path)  # tmp_path is the parent of the model root
    outside.add("evil", save_scale(tmp_path / "evil-src", 7.0))
    (tmp_path / "models" / "1").mkdir()  # so 'models/..' looks like a model with versions
    with serve(_manager(llm_repo)) as url:
        for path in ("/v2/repository/models/../load", "/v2/repository/models/%2e%2e/load",
                     "/v2/repository/models/..%2fevil/load", "/v2/models/%2e%2e/infer"):
            status, body = _raw_post(url, path, {**admin_headers, "content-type": "application/json"},
                                     json.dumps({"inputs": [X]}).encode() if path.endswith("infer") else b"")
            assert status in (400, 404), (path, status, body)
            assert "error" in json.loads(body)
        r = _post(url, "/v2/repository/models/scale/load", {"parameters": {"version": "../../evil/1"}},
                  headers=admin_headers)
        _assert_oip_error(r, 400, "invalid version")
        index = _post(url, "/v2/repository/index", b"", headers=admin_headers).json()
        assert {e["name"] for e in index} == {"scale", "fail", "tiny-llm"}
