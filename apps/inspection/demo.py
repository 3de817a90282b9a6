"""Demo step: a washer line with a camera clip, a PLC stand-in, hot-swappable models and NG cases for review.

Under ``WORKDIR/inspection/``: ``data/`` (generated washer images and
``line.avi``, a looping line-camera clip), ``model/`` (teacher + student,
trained briefly so the demo starts in about two minutes; ``bench/inspection.py``
trains them fully), ``ng/`` (the NG archive), ``plc-writes.jsonl`` (the
reject coil writes the PLC stand-in received) and ``results.jsonl``.
The model is added to the demo's platform repository as ``washer-inspection``
and the line follows its ``production`` alias, so
``npusuite models promote --root WORKDIR/models washer-inspection V`` hot-swaps it.
NG parts go to the review app when the review step published its URL and token.
"""

from __future__ import annotations

import logging
import time

from npusuite.platform.demo import DemoContext
from npusuite.platform.kafka.broker import free_port

logger = logging.getLogger(__name__)

MODEL_NAME = "washer-inspection"


def step(ctx: DemoContext) -> None:
    work = ctx.workdir / "inspection"
    work.mkdir(parents=True, exist_ok=True)
    data, clip, model = work / "data", work / "data" / "line.avi", work / "model"
    ctx.prepare("inspection: generate washer images and a line clip", clip, "inspection", "generate", "--out",
                str(data), "--products", "washer", "--train-good", "120", "--test-good", "30", "--per-defect", "5",
                "--video", str(clip))
    ctx.prepare("inspection: train teacher and student (short demo schedule)", model / "inspection.json",
                "inspection", "train", "--good", str(data / "washer"), "--out", str(model), "--teacher-steps", "120",
                "--student-steps", "100", "--batch-size", "8")
    ctx.prepare("inspection: add the model to the platform repository", ctx.model_root / MODEL_NAME, "models", "add",
                "--root", str(ctx.model_root), MODEL_NAME, str(model))

    plc_port = free_port()
    plc_log = work / "plc-writes.jsonl"
    ctx.start("inspection-plc", "inspection", "plc-sim", "--port", str(plc_port), "--log", str(plc_log))
    results = work / "results.jsonl"
    metrics_port = free_port()
    start_size = results.stat().st_size if results.exists() else 0
    args = ["inspection", "run", "--source", str(clip), "--loop", "--model", MODEL_NAME, "--model-root",
            str(ctx.model_root), "--line", "washer-line", "--modbus", f"127.0.0.1:{plc_port}", "--fail-safe",
            "--window-ms", "1000", "--archive", str(work / "ng"), "--archive-max-records", "200",
            "--results", str(results), "--metrics-port", str(metrics_port)]
    if ctx.shared.get("review_url") and ctx.shared.get("review_ingest_token"):
        token_file = work / "review-token"
        token_file.touch(mode=0o600, exist_ok=True)
        token_file.chmod(0o600)
        token_file.write_text(ctx.shared["review_ingest_token"])
        args += ["--review-url", ctx.shared["review_url"], "--review-token-file", str(token_file)]

    def ready() -> bool:
        return results.exists() and results.stat().st_size > start_size

    time.sleep(0.5)  # let the PLC stand-in bind its port
    ctx.start("inspection", *args, url=f"http://127.0.0.1:{metrics_port}/metrics", ready=ready)
    ctx.expose_metrics("npusuite-inspection", f"http://127.0.0.1:{metrics_port}/metrics")
    ctx.notes.append(f"inspection   results {results}, NG archive {work / 'ng'}, PLC coil writes {plc_log}")
    ctx.notes.append(f"inspection   hot swap: npusuite models promote --root {ctx.model_root} {MODEL_NAME} VERSION")
