"""A small client of Prometheus' HTTP API (``/api/v1/query_range``, ``/api/v1/query``).

Every failure (unreachable server, HTTP error, a query Prometheus refuses, an answer that is not
a matrix/vector) becomes a :class:`PrometheusError`, a :class:`UserError`: one line at the CLI.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import httpx
import numpy as np

from npusuite.platform.errors import UserError


class PrometheusError(UserError):
    """Prometheus could not answer a query (one line, no traceback)."""


@dataclass(frozen=True)
class Series:
    """One time series: its labels, timestamps (unix seconds) and values (NaN for gaps/NaN samples)."""

    labels: dict[str, str]
    t: np.ndarray
    v: np.ndarray = field(repr=False)

    def on_grid(self, start: float, end: float, step_s: float) -> np.ndarray:
        """Values on the regular grid ``start, start+step, ... <= end``; NaN where there is no sample."""
        n = int(math.floor((end - start) / step_s + 1e-9)) + 1
        out = np.full(n, np.nan)
        idx = np.rint((self.t - start) / step_s).astype(int)
        ok = (idx >= 0) & (idx < n)
        out[idx[ok]] = self.v[ok]
        return out


class PrometheusClient:
    """``query_range`` and ``query`` against one Prometheus server."""

    def __init__(self, base_url: str, *, timeout_s: float = 10.0, client: httpx.Client | None = None) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise PrometheusError(f"Prometheus URL must start with http:// or https://, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._client = client or httpx.Client(timeout=timeout_s)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> PrometheusClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get(self, path: str, params: dict[str, str]) -> dict:
        url = f"{self.base_url}{path}"
        try:
            resp = self._client.get(url, params=params)
        except httpx.HTTPError as exc:
            raise PrometheusError(f"cannot reach Prometheus at {self.base_url}: {type(exc).__name__}: {exc}") from exc
        try:
            body = resp.json()
        except ValueError:
            raise PrometheusError(
                f"{url} answered HTTP {resp.status_code} with no JSON (is this a Prometheus server?)"
            ) from None
        if not isinstance(body, dict) or body.get("status") != "success":
            err = body.get("error", f"HTTP {resp.status_code}") if isinstance(body, dict) else resp.status_code
            kind = body.get("errorType", "error") if isinstance(body, dict) else "error"
            raise PrometheusError(f"Prometheus refused the query {params.get('query')!r}: {kind}: {err}")
        return body["data"]

    def query_range(self, promql: str, start: float, end: float, step_s: float) -> list[Series]:
        """A range query; each result series as float arrays."""
        if end <= start or step_s <= 0:
            raise PrometheusError(f"bad range: start {start}, end {end}, step {step_s}s")
        data = self._get("/api/v1/query_range",
                         {"query": promql, "start": repr(float(start)), "end": repr(float(end)),
                          "step": repr(float(step_s))})
        if data.get("resultType") != "matrix":
            raise PrometheusError(f"query {promql!r} gave a {data.get('resultType')}, not a range (matrix)")
        return [_series(r["metric"], r.get("values", [])) for r in data["result"]]

    def query(self, promql: str, at: float | None = None) -> list[Series]:
        """An instant query; a vector result (or a scalar) as one-point series."""
        params = {"query": promql}
        if at is not None:
            params["time"] = repr(float(at))
        data = self._get("/api/v1/query", params)
        kind = data.get("resultType")
        if kind == "vector":
            return [_series(r["metric"], [r["value"]]) for r in data["result"]]
        if kind == "scalar":
            return [_series({}, [data["result"]])]
        raise PrometheusError(f"query {promql!r} gave a {kind}, not a vector")


def _series(labels: dict[str, str], values: list) -> Series:
    t = np.array([float(p[0]) for p in values], dtype=float)
    v = np.array([_num(p[1]) for p in values], dtype=float)
    return Series(dict(labels), t, v)


def _num(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan
