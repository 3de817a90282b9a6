"""Triton's statistics extension: ``GET /v2/models[/NAME[/versions/V]]/stats``.

Rules:
- The answer is ``{"model_stats": [...]}`` with one entry per served
  (model, version), in the shape of
  :meth:`~npusuite.platform.engine.statistics.InferenceStatistics.model_stats`,
  so ``tritonclient.http.InferenceServerClient.get_inference_statistics`` reads it.
- Without a name: every served version of every model.  With a name: its
  served versions (404 when the model is not loaded).  With a version: that
  one (404 when it is not served).  Names are checked like every other path
  (400 for a malformed one); errors are OIP's ``{"error": "..."}``.
- This router is included before the model metadata routes, so
  ``/v2/models/stats`` is never read as a model named ``stats``.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from npusuite.platform.repository.names import check_name

router = APIRouter()


@router.get("/v2/models/stats")
def all_statistics(request: Request) -> dict:
    manager = request.app.state.manager
    return {"model_stats": manager.statistics.model_stats(manager.served())}


@router.get("/v2/models/{name}/stats")
@router.get("/v2/models/{name}/versions/{version}/stats")
def model_statistics(request: Request, name: str, version: str | None = None) -> dict:
    manager = request.app.state.manager
    check_name("model name", name)
    if version is not None:
        check_name("version", version)
    manager.get(name, version)  # ModelNotReadyError / NotFoundError -> 404
    versions = [version] if version is not None else manager.served_versions(name)
    return {"model_stats": manager.statistics.model_stats([(name, v) for v in versions])}
