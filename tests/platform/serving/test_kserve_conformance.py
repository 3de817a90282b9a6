"""KServe v2 / Triton conformance through the unmodified ``tritonclient``: statistics, several served
versions of one model, platform names, OIP error shapes."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from npusuite.platform.engine import ModelManager
from npusuite.platform.engine.version_policy import VersionPolicy, parse_policy
from npusuite.platform.errors import UserError
from npusuite.platform.serving.metrics import PlatformMetrics


def _two_versions(repo) -> ModelManager:
    m = ModelManager(repo, observer=PlatformMetrics(), version_policies={"scale": VersionPolicy(latest=2)})
    m.start()
    return m


def _infer(client, version: str, x: np.ndarray):
    import tritonclient.http as triton

    inp = triton.InferInput("x", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    return client.infer("scale", [inp], model_version=version)


def test_tritonclient_infers_on_two_served_versions_and_reads_their_statistics(serve, scale_repo):
    import tritonclient.http as triton

    with serve(_two_versions(scale_repo)) as url:
        client = triton.InferenceServerClient(url.removeprefix("http://"))
        x = np.ones((3, 4), dtype=np.float32)
        for _ in range(2):
            np.testing.assert_allclose(_infer(client, "1", x).as_numpy("y"), x)      # v1: y = x
        np.testing.assert_allclose(_infer(client, "2", x).as_numpy("y"), 2 * x)      # v2: y = 2x
        assert _infer(client, "", x).get_response()["model_version"] == "1"          # unversioned: production
        assert client.is_model_ready("scale", "2")
        assert client.get_model_metadata("scale", "2")["versions"] == ["1", "2"]
        assert "statistics" in client.get_server_metadata()["extensions"]

        stats = {s["version"]: s for s in client.get_inference_statistics("scale")["model_stats"]}
        assert set(stats) == {"1", "2"}
        v1, v2 = stats["1"], stats["2"]
        assert v1["inference_stats"]["success"]["count"] == 3 and v2["inference_stats"]["success"]["count"] == 1
        assert v1["inference_count"] == 9 and v2["inference_count"] == 3  # rows
        assert v1["execution_count"] >= 1 and v1["inference_stats"]["success"]["ns"] > 0
        assert v1["inference_stats"]["queue"]["count"] == 3 and v1["inference_stats"]["compute_infer"]["ns"] > 0
        assert v1["last_inference"] > 0 and v1["inference_stats"]["fail"]["count"] == 0
        one = client.get_inference_statistics("scale", "2")["model_stats"]
        assert [s["version"] for s in one] == ["2"]
        assert {(s["name"], s["version"]) for s in client.get_inference_statistics()["model_stats"]} == {
            ("scale", "1"), ("scale", "2")}

        with pytest.raises(triton.InferenceServerException) as err:  # a version not served: 404, OIP shape
            _infer(client, "3", x)
        assert "not served" in str(err.value)
        bad = httpx.post(f"{url}/v2/models/scale/versions/2/infer", json={"inputs": [
            {"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]})
        assert bad.status_code == 400 and isinstance(bad.json()["error"], str)
        fails = client.get_inference_statistics("scale", "2")["model_stats"][0]["inference_stats"]["fail"]
        assert fails["count"] == 1
        for path in ("/v2/models/nope/stats", "/v2/models/scale/versions/9/stats", "/v2/models/scale/versions/9"):
            r = httpx.get(url + path)
            assert r.status_code == 404 and isinstance(r.json()["error"], str), path
        assert httpx.get(url + "/v2/models/sc%20ale/stats").status_code == 400


def test_platform_names_follow_oip(serve, scale_repo):
    with serve(_two_versions(scale_repo)) as url:
        assert httpx.get(url + "/v2/models/scale").json()["platform"] == "pytorch_safetensors"


def test_unload_stops_every_version_and_index_shows_them(serve, scale_repo, admin_headers):
    with serve(_two_versions(scale_repo)) as url:
        index = httpx.post(url + "/v2/repository/index", headers=admin_headers).json()
        assert [(e["version"], e["state"]) for e in index] == [("1", "READY"), ("2", "READY")]
        assert httpx.post(url + "/v2/repository/models/scale/unload", headers=admin_headers).status_code == 200
        assert httpx.get(url + "/v2/models/scale/versions/2/ready").status_code == 400


@pytest.mark.parametrize("spec, expected", [("m=latest:2", ("m", VersionPolicy(latest=2))),
                                            ("m=1,3", ("m", VersionPolicy(versions=("1", "3"))))])
def test_version_policy_parses(spec, expected):
    assert parse_policy(spec) == expected
    assert VersionPolicy(latest=2).select(["1", "2", "3"]) == ["2", "3"]
    assert VersionPolicy(versions=("1", "9")).select(["1", "2"]) == ["1"]


@pytest.mark.parametrize("spec", ["m", "=latest:1", "m=latest:0", "m=latest:x", "m=", "m=1,,2", "../x=1", "m=a/b"])
def test_a_malformed_version_policy_is_a_user_error(spec):
    with pytest.raises(UserError, match="--version-policy"):
        parse_policy(spec)
