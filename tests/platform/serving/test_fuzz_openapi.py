"""Schemathesis over the platform's own OpenAPI schema, against a real uvicorn on 127.0.0.1: every operation,
schema-valid and schema-violating inputs, zero server errors, every error in JSON."""

from __future__ import annotations

import json
from pathlib import Path

from npusuite.platform.engine import ModelManager
from npusuite.platform.repository import ModelRepository
from npusuite.platform.serving.metrics import PlatformMetrics

EXAMPLES_PER_OPERATION = 20  # x 2 modes x the operations: about 400 requests, well under a minute here


def _short(case) -> None:
    """Generations stay short so the run fits its budget; everything else is as generated."""
    if case.path.startswith("/v1/") and isinstance(case.body, dict):
        for key in ("max_tokens", "max_completion_tokens"):
            if isinstance(case.body.get(key), int) and not isinstance(case.body.get(key), bool):
                case.body[key] = min(case.body[key], 8)
        case.body.setdefault("max_tokens", 8)


def _fuzz(op, mode, url: str, headers: dict, label: str, tried: dict[str, int], failures: list[str]) -> None:
    from hypothesis import HealthCheck, given, settings

    @given(case=op.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case):
        _short(case)
        response = case.call(base_url=url, headers=headers, timeout=60)
        tried[label] = tried.get(label, 0) + 1
        if response.status_code >= 500:
            failures.append(f"{label}: {response.status_code} {response.text[:200]}")
        elif response.status_code >= 400:
            body = json.loads(response.text)  # every refusal is a JSON object (KServe's ready=false included)
            assert isinstance(body, dict) and ("error" in body or body.get("ready") is False), (label, body)

    run()


def test_fuzz_the_openapi_schema_finds_no_server_error(serve, admin_headers, tmp_path: Path, tiny_llm_dir: Path):
    import schemathesis
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode

    from npusuite.platform.runtime.reference_models import save_scale

    repo = ModelRepository(tmp_path / "models")
    repo.add("scale", save_scale(tmp_path / "s1", 1.0))
    repo.add("tiny-llm", tiny_llm_dir)
    manager = ModelManager(repo, observer=PlatformMetrics())
    manager.start()
    tried: dict[str, int] = {}
    failures: list[str] = []
    with serve(manager) as url:
        schema = schemathesis.openapi.from_url(url + "/openapi.json")
        for result in schema.get_all_operations():
            op = result.ok()
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                try:
                    _fuzz(op, mode, url, admin_headers, f"{op.label} [{mode.value}]", tried, failures)
                except Unsatisfiable:  # e.g. no way to violate the schema of an operation without inputs
                    continue
    total = sum(tried.values())
    print(f"schemathesis: {total} cases over {len(tried)} operation/mode pairs")
    assert failures == [], failures[:5]
    assert total >= 200 and len(tried) >= 20
