"""Review app benchmarks: ingest rate over real HTTP, and "next case" under contention.

1. **Ingest**: fraud alerts/s through ``POST /api/ingest/fraud-alerts`` on a
   real uvicorn server (4 concurrent httpx clients), first deliveries and then
   redeliveries of the same ids; baseline measured in the same run: the naive
   path, a plain ``INSERT`` of each alert's JSON into a scratch table in the
   same database (no validation, no idempotency, no journal, no HTTP).
2. **Next case**: cases/s and per-take latency (p50/p99) with 4 concurrent
   takers, against a single taker as the baseline, on the same queue size.

Writes ``bench/out/review-<database>.json`` and ``.png`` (``sqlite`` or ``postgresql``).  ``--quick``:
fewer alerts and cases.  ``--db URL`` runs against an empty database of your
choice (e.g. PostgreSQL) instead of a fresh SQLite file.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from sqlalchemy import text
from tqdm import tqdm

from npusuite.platform.kafka.broker import free_port
from npusuite.review import cases
from npusuite.review.accounts import SessionInfo, add_service_token, create_user
from npusuite.review.config import ReviewConfig, sqlite_url
from npusuite.review.db import make_engine, migrate, session_factory
from npusuite.review.ingest import ingest_fraud_alert, parse_fraud_alert
from npusuite.review.web.app import create_app

OUT = Path(__file__).resolve().parent / "out"
CLIENTS = 4
TAKERS = 4


def _alert(i: int, run: str) -> dict:
    tx = {"transaction_id": f"{run}-{i}", "timestamp": "2026-03-02T12:00:00.000000Z", "account_id": f"a{i % 50}",
          "card_id": "c1", "amount": 10.0 + i % 300, "currency": "EUR", "merchant_id": f"m{i % 97}",
          "merchant_category": "5411", "channel": "ecommerce", "country": "DE", "lat": None, "lon": None,
          "device_id": "d1", "ip": None}
    recent = [{**tx, "transaction_id": f"{run}-{i}-p{j}", "timestamp": f"2026-03-02T1{j}:00:00.000000Z"}
              for j in range(5)]
    return {"transaction_id": tx["transaction_id"], "score": (i % 100) / 100, "decision": "review",
            "reasons": ["velocity", "amount_spike"], "model": "fraud-mlp@1", "latency_ms": 2.0, "transaction": tx,
            "account_recent": recent, "features": {"f1": 1.0, "f2": 2.0}, "llm_rationale": None, "fraud_type": None}


class _Server:
    def __init__(self, app, port: int) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def _post_all(url: str, token: str, bodies: list[dict], desc: str) -> float:
    """Alerts/s for posting BODIES with CLIENTS concurrent clients."""
    clients = [httpx.Client(timeout=60, headers={"Authorization": f"Bearer {token}"}) for _ in range(CLIENTS)]
    bar = tqdm(total=len(bodies), desc=desc, unit="alert")

    def send(k: int) -> None:
        for body in bodies[k::CLIENTS]:
            resp = clients[k].post(f"{url}/api/ingest/fraud-alerts", json=body)
            if resp.status_code not in (200, 201):
                raise RuntimeError(f"ingest answered {resp.status_code}: {resp.text}")
            bar.update()

    start = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(send, range(CLIENTS)))
    elapsed = time.perf_counter() - start
    bar.close()
    for c in clients:
        c.close()
    return len(bodies) / elapsed


def bench_ingest(engine, sessions, cfg: ReviewConfig, n: int) -> dict:
    run = uuid.uuid4().hex[:6]
    bodies = [_alert(i, run) for i in range(n)]
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS bench_naive (id VARCHAR(64), body TEXT)"))
    start = time.perf_counter()
    for body in tqdm(bodies, desc="baseline: naive INSERT", unit="alert"):
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO bench_naive (id, body) VALUES (:i, :b)"),
                         {"i": body["transaction_id"], "b": json.dumps(body)})
    naive = n / (time.perf_counter() - start)
    with sessions() as s:
        token = add_service_token(s, f"bench-{run}")
    port = free_port()
    with _Server(create_app(cfg, sessions), port):
        url = f"http://127.0.0.1:{port}"
        first = _post_all(url, token, bodies, "ingest over HTTP")
        repeat = _post_all(url, token, bodies, "redelivery over HTTP")
    return {"alerts": n, "clients": CLIENTS, "naive_insert_per_s": naive, "http_ingest_per_s": first,
            "http_redelivery_per_s": repeat, "ratio_ingest_vs_naive": first / naive}


def _takes(sessions, me: SessionInfo, latencies: list[float], bar) -> int:
    got = 0
    with sessions() as s:
        while True:
            start = time.perf_counter()
            case = cases.next_case(s, me)
            latencies.append(time.perf_counter() - start)
            if case is None:
                return got
            got += 1
            bar.update()


def _drain(sessions, run: str, takers: int) -> None:
    """Hand out whatever is still queued (untimed), so each round starts with exactly its own cases."""
    with sessions() as s:
        user = create_user(s, f"{run}-drain{takers}", "bench-password", "analyst")
        me = SessionInfo(user.id, user.username, user.role, "-")
        while cases.next_case(s, me) is not None:
            pass


def bench_next_case(sessions, cfg: ReviewConfig, n: int, takers: int, run: str) -> dict:
    _drain(sessions, run, takers)
    with sessions() as s:
        for i in tqdm(range(n), desc=f"queue {n} cases", unit="case"):
            ingest_fraud_alert(s, parse_fraud_alert(_alert(i, f"{run}-q{takers}")), "bench", cfg)
        users = [create_user(s, f"{run}-t{takers}-{k}", "bench-password", "analyst") for k in range(takers)]
    people = [SessionInfo(u.id, u.username, u.role, "-") for u in users]
    latencies: list[float] = []
    bar = tqdm(total=n, desc=f"next case x{takers}", unit="case")
    start = time.perf_counter()
    with ThreadPoolExecutor(takers) as pool:
        got = sum(pool.map(lambda p: _takes(sessions, p, latencies, bar), people))
    elapsed = time.perf_counter() - start
    bar.close()
    if got != n:
        raise RuntimeError(f"took {got} cases of {n}")
    ordered = sorted(latencies)
    return {"takers": takers, "cases": n, "cases_per_s": n / elapsed,
            "p50_ms": 1000 * statistics.median(ordered), "p99_ms": 1000 * ordered[int(0.99 * (len(ordered) - 1))]}


def _plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ing, one, many = result["ingest"], result["next_case"]["baseline_1_taker"], result["next_case"]["concurrent"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.bar(["naive INSERT\n(baseline)", "HTTP ingest", "HTTP redelivery"],
          [ing["naive_insert_per_s"], ing["http_ingest_per_s"], ing["http_redelivery_per_s"]],
          color=["#94a3b8", "#2563eb", "#60a5fa"])
    a.set_ylabel("alerts / s")
    a.set_title(f"Ingest ({ing['clients']} clients, {result['db']})")
    b.bar(["1 taker\n(baseline)", f"{many['takers']} takers"], [one["cases_per_s"], many["cases_per_s"]],
          color=["#94a3b8", "#2563eb"])
    b.set_ylabel("cases taken / s")
    b.set_title(f"Next case (p99 {one['p99_ms']:.1f} -> {many['p99_ms']:.1f} ms)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer alerts and cases (about a minute)")
    parser.add_argument("--db", help="an empty database URL to run against (default: a fresh SQLite file)")
    args = parser.parse_args()
    n_alerts, n_cases = (300, 200) if args.quick else (2000, 1000)
    tmp = tempfile.TemporaryDirectory(prefix="review-bench-")
    url = args.db or sqlite_url(Path(tmp.name) / "bench.db")
    engine = make_engine(url)
    migrate(engine)
    sessions = session_factory(engine)
    cfg = ReviewConfig(db_url=url)
    run = uuid.uuid4().hex[:6]
    result = {"db": engine.dialect.name, "quick": args.quick,
              "ingest": bench_ingest(engine, sessions, cfg, n_alerts),
              "next_case": {"baseline_1_taker": bench_next_case(sessions, cfg, n_cases, 1, run),
                            "concurrent": bench_next_case(sessions, cfg, n_cases, TAKERS, run)}}
    nc = result["next_case"]
    nc["ratio_concurrent_vs_1_taker"] = nc["concurrent"]["cases_per_s"] / nc["baseline_1_taker"]["cases_per_s"]
    OUT.mkdir(parents=True, exist_ok=True)
    name = f"review-{result['db']}"
    (OUT / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    _plot(result, OUT / f"{name}.png")
    engine.dispose()
    tmp.cleanup()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
