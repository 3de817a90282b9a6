"""The platform over real HTTP: standard clients, hot swap under load, refusals and errors."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from npusuite.platform.engine import BatcherConfig, ModelManager
from npusuite.platform.repository import ModelRepository
from npusuite.platform.serving.metrics import PlatformMetrics


def _manager(repo, **batcher) -> ModelManager:
    m = ModelManager(repo, batcher=BatcherConfig(**batcher) if batcher else None, observer=PlatformMetrics())
    m.start()
    return m


def _infer_json(url: str, value: float = 1.0, rows: int = 1) -> httpx.Response:
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [rows, 4], "data": [value] * (4 * rows)}]}
    return httpx.post(f"{url}/v2/models/scale/infer", json=body, timeout=60)


def test_tritonclient_reads_metadata_and_infers(serve, admin_headers, scale_repo):
    import tritonclient.http as triton

    with serve(_manager(scale_repo)) as url:
        client = triton.InferenceServerClient(url.removeprefix("http://"))
        assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("scale")
        meta = client.get_model_metadata("scale")
        assert meta["name"] == "scale" and meta["inputs"][0]["name"] == "x" and meta["outputs"][0]["name"] == "y"
        x = np.arange(8, dtype=np.float32).reshape(2, 4)
        for binary in (True, False):
            inp = triton.InferInput("x", list(x.shape), "FP32")
            inp.set_data_from_numpy(x, binary_data=binary)
            out = triton.InferRequestedOutput("y", binary_data=binary)
            result = client.infer("scale", [inp], outputs=[out])
            np.testing.assert_allclose(result.as_numpy("y"), x)  # production is v1: y = x
            assert result.get_response()["model_version"] == "1"


def test_openai_client_streams_a_chat_completion(serve, admin_headers, tmp_path: Path, tiny_llm_dir: Path):
    import openai

    repo = ModelRepository(tmp_path / "models")
    repo.add("tiny-llm", tiny_llm_dir)
    with serve(_manager(repo)) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused")
        assert [m.id for m in client.models.list().data] == ["tiny-llm"]
        chunks = list(client.chat.completions.create(
            model="tiny-llm", messages=[{"role": "user", "content": "is this card payment fraud?"}],
            max_tokens=12, temperature=0, stream=True))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert len(chunks) >= 3 and chunks[-1].choices[0].finish_reason in ("length", "stop")
        full = client.chat.completions.create(
            model="tiny-llm", messages=[{"role": "user", "content": "is this card payment fraud?"}],
            max_tokens=12, temperature=0)
        assert full.choices[0].message.content == text  # greedy: streamed == non-streamed
        assert full.usage.completion_tokens <= 12
        comp = client.completions.create(model="tiny-llm", prompt="the card was", max_tokens=5, temperature=0.7,
                                         top_p=0.9, seed=3)
        assert comp.choices[0].finish_reason in ("length", "stop")
        metrics = httpx.get(url + "/metrics").text
        assert "npusuite_llm_time_to_first_token_seconds_count" in metrics
        assert "npusuite_llm_generated_tokens_total" in metrics and "npusuite_platform_model_memory_bytes" in metrics


def test_ten_swaps_under_load_fail_no_request(serve, admin_headers, scale_repo):
    """>= 8 client threads keep load on while the served version swaps 10 times between v1 and v2."""
    with serve(_manager(scale_repo)) as url:
        stop = threading.Event()
        failures: list[str] = []
        answers: list[tuple[float, float]] = []  # (time, y)
        lock = threading.Lock()

        def client() -> None:
            with httpx.Client(timeout=60) as http:
                while not stop.is_set():
                    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 1, 1, 1]}]}
                    try:
                        r = http.post(f"{url}/v2/models/scale/infer", json=body)
                        if r.status_code != 200:
                            failures.append(f"{r.status_code} {r.text}")
                            continue
                        out = r.json()
                        y = out["outputs"][0]["data"][0]
                        if float(out["model_version"]) != y:  # v1 answers 1.0, v2 answers 2.0
                            failures.append(f"version {out['model_version']} answered {y}")
                        with lock:
                            answers.append((time.monotonic(), y))
                    except httpx.HTTPError as exc:
                        failures.append(repr(exc))

        threads = [threading.Thread(target=client) for _ in range(8)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        swap_times = []
        for i in range(10):
            target = "2" if i % 2 == 0 else "1"
            t0 = time.monotonic()
            r = httpx.post(f"{url}/v2/repository/models/scale/load", json={"parameters": {"version": target}},
                           headers=admin_headers, timeout=60)
            swap_times.append(time.monotonic() - t0)
            assert r.status_code == 200, r.text
            time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join(60)
        assert failures == []
        assert len(answers) > 100
        assert {y for _, y in answers} == {1.0, 2.0}
        # after the last swap (to v1) every answer comes from v1
        last = _infer_json(url).json()
        assert last["model_version"] == "1" and last["outputs"][0]["data"][0] == 1.0


def test_corrupted_weights_are_refused_and_old_version_keeps_serving(serve, admin_headers, scale_repo,
                                                                     tmp_path: Path):
    from npusuite.platform.runtime.reference_models import save_scale

    bad = scale_repo.add("scale", save_scale(tmp_path / "src3", 3.0))
    weights = bad.path / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-4:] = b"\x00\x00\x80\x7f"  # flip the last float of the weights
    weights.write_bytes(bytes(raw))
    with serve(_manager(scale_repo)) as url:
        r = httpx.post(f"{url}/v2/repository/models/scale/load", json={"parameters": {"version": "3"}},
                       headers=admin_headers, timeout=60)
        assert 400 <= r.status_code < 600
        assert "checksum mismatch for model.safetensors" in r.json()["error"]
        ok = _infer_json(url, 5.0)
        assert ok.status_code == 200 and ok.json()["model_version"] == "1"
        assert ok.json()["outputs"][0]["data"] == [5.0] * 4
        text = httpx.get(url + "/metrics").text
        assert 'npusuite_platform_model_swaps_total{model="scale",result="failed"} 1.0' in text


def test_full_queue_answers_503_with_retry_after(serve, admin_headers, tmp_path: Path):
    from npusuite.platform.runtime.reference_models import save_sleep

    repo = ModelRepository(tmp_path / "models")
    repo.add("slow", save_sleep(tmp_path / "slow", delay_ms=300))
    with serve(_manager(repo, max_batch_size=1, max_queue_size=2, max_queue_delay_ms=0)) as url:
        body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
        with ThreadPoolExecutor(12) as pool:
            responses = list(pool.map(lambda _: httpx.post(f"{url}/v2/models/slow/infer", json=body, timeout=60),
                                      range(12)))
        codes = sorted(r.status_code for r in responses)
        assert 200 in codes and 503 in codes, codes
        busy = [r for r in responses if r.status_code == 503]
        assert all(int(r.headers["Retry-After"]) >= 1 and "queue full" in r.json()["error"] for r in busy)


@pytest.mark.parametrize("body, fragment", [
    (b"{not json", "not valid JSON"),
    (b'{"inputs": []}', "field 'inputs'"),
    (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2]}]}', "do not fill shape"),
    (b'{"inputs": [{"name": "x", "datatype": "FP99", "shape": [1], "data": [1]}]}', "unknown datatype"),
    (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 5], "data": [1, 2, 3, 4, 5]}]}',
     "does not match [-1, 4]"),
    (b'{"inputs": [{"name": "z", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}',
     "missing input tensor 'x'"),
    (b'{"inputs": [{"name": "x", "datatype": "BOOL", "shape": [1, 4], "data": [true, true, true, true]}]}',
     "datatype bool"),
])
def test_malformed_infer_body_is_400_json(serve, admin_headers, scale_repo, body: bytes, fragment: str):
    with serve(_manager(scale_repo)) as url:
        r = httpx.post(f"{url}/v2/models/scale/infer", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 400 and fragment in r.json()["error"]


def test_errors_auth_and_metrics(serve, admin_headers, scale_repo, tiny_llm_dir: Path):
    scale_repo.add("tiny-llm", tiny_llm_dir)
    with serve(_manager(scale_repo)) as url:
        r = httpx.post(f"{url}/v1/chat/completions", content=b'{"model": "tiny-llm", "messages": "nope"}',
                       headers={"content-type": "application/json"})
        assert r.status_code == 400 and "messages" in r.json()["error"]["message"]
        r = httpx.post(f"{url}/v1/completions", json={"model": "nope", "prompt": "x"})
        assert r.status_code == 404 and "nope" in r.json()["error"]["message"]
        assert httpx.get(f"{url}/v2/models/nope").status_code == 404
        assert httpx.post(f"{url}/v2/repository/index").status_code == 401
        bad = httpx.post(f"{url}/v2/repository/index", headers={"Authorization": "Bearer wrong"})
        assert bad.status_code == 401 and "error" in bad.json()
        index = httpx.post(f"{url}/v2/repository/index", headers=admin_headers).json()
        assert {"name": "scale", "version": "1", "state": "READY", "reason": ""} in index
        r = httpx.post(f"{url}/v2/repository/models/scale/load", json={"parameters": {"version": "9"}},
                       headers=admin_headers)
        assert r.status_code == 409 and "no version or alias '9'" in r.json()["error"]
        assert _infer_json(url, rows=3).status_code == 200
        llm = httpx.post(f"{url}/v2/models/tiny-llm/infer", json={
            "inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": ["the card", "hi"]}],
            "parameters": {"max_tokens": 3}}, timeout=60)
        assert llm.status_code == 200, llm.text
        out = llm.json()["outputs"][0]
        assert out["datatype"] == "BYTES" and out["shape"] == [2] and all(isinstance(t, str) for t in out["data"])
        import tritonclient.http as triton

        client = triton.InferenceServerClient(url.removeprefix("http://"))
        inp = triton.InferInput("text", [1], "BYTES")
        inp.set_data_from_numpy(np.array([b"the card"], dtype=object), binary_data=True)
        got = client.infer("tiny-llm", [inp], outputs=[triton.InferRequestedOutput("text", binary_data=False)])
        assert got.as_numpy("text").shape == (1,)
        text = httpx.get(f"{url}/metrics").text
        for name in ("npusuite_platform_requests_total", "npusuite_platform_batch_size_rows_bucket",
                     "npusuite_platform_queue_wait_seconds", "npusuite_platform_forward_seconds",
                     "npusuite_platform_queue_length_requests", "npusuite_platform_model_alias_info",
                     "npusuite_platform_request_errors_total"):
            assert name in text, name
        assert 'npusuite_platform_requests_total{endpoint="infer",model="scale",status="200"}' in text
        assert httpx.post(f"{url}/v2/repository/models/scale/unload", headers=admin_headers).status_code == 200
        assert _infer_json(url).status_code == 404


def test_request_that_cannot_meet_its_deadline_is_refused_at_once(serve, admin_headers, tmp_path: Path):
    """The batcher knows a batch takes ~400 ms: a 50 ms deadline behind a running batch is 503 at once
    (with Retry-After), not queued to expire (the engine-level 504 is in test_batcher)."""
    from npusuite.platform.runtime.reference_models import save_sleep

    repo = ModelRepository(tmp_path / "models")
    repo.add("slow", save_sleep(tmp_path / "slow", delay_ms=400))
    with serve(_manager(repo, max_batch_size=1, max_queue_delay_ms=0)) as url:
        body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
        late = dict(body, parameters={"deadline_ms": 50})
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(httpx.post, f"{url}/v2/models/slow/infer", json=body, timeout=60)
            time.sleep(0.15)  # the worker is busy with `first`
            second = pool.submit(httpx.post, f"{url}/v2/models/slow/infer", json=late, timeout=60)
            assert first.result().status_code == 200
            r = second.result()
        assert r.status_code == 503 and "deadline" in r.json()["error"] and int(r.headers["Retry-After"]) >= 1
        bad = httpx.post(f"{url}/v2/models/slow/infer", json=dict(body, parameters={"deadline_ms": "soon"}))
        assert bad.status_code == 400
