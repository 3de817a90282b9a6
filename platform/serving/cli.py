"""``npusuite platform``: serve a model repository over HTTP; make a tiny local LLM.

Heavy imports (torch, transformers, uvicorn) happen inside the commands.
"""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from npusuite.platform.errors import UserError

logger = logging.getLogger(__name__)

app = typer.Typer(no_args_is_help=True, help=(
    "Serve models over KServe v2 (tritonclient) and the OpenAI API, with dynamic batching and hot swap; "
    "make small local test models.\n\n"
    "Example:\n\n"
    "  npusuite platform make-tiny-llm ./tiny\n\n"
    "  npusuite models add --root ./models tiny-llm ./tiny\n\n"
    "  NPUSUITE_ADMIN_TOKEN=secret npusuite platform serve --model-root ./models --port 8000"))


@app.command("make-tiny-llm")
def make_tiny_llm_cmd(
    out_dir: Path = typer.Argument(..., help="Folder to write (Hugging Face layout: config, safetensors, tokenizer)."),
    arch: str = typer.Option("qwen2", "--arch", help="qwen2 or deepseek_v3."),
    size: str = typer.Option("tiny", "--size", help="tiny (~0.2M params; tests, demo), bench (~30M), large (~0.3B)."),
    seed: int = typer.Option(0, "--seed", help="Seed for the corpus, tokenizer and random weights."),
    corpus: Path | None = typer.Option(None, "--corpus", help="Text file to train the BPE tokenizer on "
                                                              "(default: a small built-in synthetic corpus)."),
) -> None:
    """Build a small RANDOM causal LM with a locally trained BPE tokenizer (no download).

    It loads through the same AutoModelForCausalLM.from_pretrained path as a real checkpoint, so it exercises
    serving end to end; its text is gibberish by design."""
    from npusuite.platform.runtime.tiny_llm import ARCHITECTURES, SIZES, make_tiny_llm

    if arch not in ARCHITECTURES:
        raise UserError(f"--arch {arch!r}: choose one of {', '.join(ARCHITECTURES)}")
    if size not in SIZES:
        raise UserError(f"--size {size!r}: choose one of {', '.join(SIZES)}")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise UserError(f"{out_dir} exists and is not empty")
    texts = None
    if corpus is not None:
        if not corpus.is_file():
            raise UserError(f"corpus file {corpus} does not exist")
        texts = [line for line in corpus.read_text().splitlines() if line.strip()]
    path = make_tiny_llm(out_dir, texts=texts, arch=arch, size=size, seed=seed)
    typer.echo(f"wrote a {size} {arch} model to {path}")


@app.command("serve")
def serve(
    model_root: Path = typer.Option(..., "--model-root", help="Model repository (ROOT/<name>/<version>/)."),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda[:N] or npu[:N]."),
    admin_token: str | None = typer.Option(None, "--admin-token", help=(
        "Bearer token for management endpoints (/v2/repository/...); default NPUSUITE_ADMIN_TOKEN. "
        "Without one, management endpoints are refused.")),
    max_batch_size: int = typer.Option(32, "--max-batch-size", help="Rows per batch for tensor models."),
    max_queue_delay_ms: float = typer.Option(0.0, "--max-queue-delay-ms", help=(
        "How long the first request of a batch waits for company; 0 = merge whatever queued while the "
        "previous batch ran (measured best; see docs/platform.md).")),
    max_queue_size: int = typer.Option(512, "--max-queue-size", help="Waiting requests per model; beyond: 503."),
    max_running: int = typer.Option(64, "--max-running", help="LLM requests decoded together per step."),
    max_body_bytes: int = typer.Option(32 * 1024 * 1024, "--max-body-bytes", min=1024, help=(
        "Largest request body accepted; larger ones are answered 413 before they are read.")),
    follow_aliases: bool = typer.Option(True, "--follow-aliases/--no-follow-aliases", help=(
        "Hot-swap automatically when a model's production alias moves (npusuite models promote/rollback).")),
) -> None:
    """Serve every model of the repository that has a production alias.

    Endpoints: /v2/... (KServe v2: tritonclient.http works), /v2/repository/... (load = hot swap; admin token),
    /v1/completions and /v1/chat/completions (OpenAI, `stream: true` for SSE), /v1/models, /metrics.

    Swap a version with zero failed requests: `npusuite models promote --root DIR NAME V` (followed within
    ~1 s), or POST /v2/repository/models/NAME/load {"parameters": {"version": "V"}} with the admin token."""
    import uvicorn

    from npusuite.platform.engine import BatcherConfig, LLMConfig, ModelManager
    from npusuite.platform.repository import ModelRepository
    from npusuite.platform.serving.app import create_app
    from npusuite.platform.serving.metrics import PlatformMetrics
    from npusuite.platform.settings import AdminSettings

    if not model_root.is_dir():
        raise UserError(f"model repository {model_root} does not exist (create it with `npusuite models add`)")
    token = admin_token or AdminSettings().admin_token
    if not token:
        logger.warning("no admin token: management endpoints are disabled")
    metrics = PlatformMetrics()
    manager = ModelManager(ModelRepository(model_root), device=device,
                           batcher=BatcherConfig(max_batch_size=max_batch_size, max_queue_delay_ms=max_queue_delay_ms,
                                                 max_queue_size=max_queue_size),
                           llm=LLMConfig(max_running=max_running), observer=metrics, follow_aliases=follow_aliases)
    manager.start()
    served = [e.ref for e in manager.loaded()]
    logger.info("serving %s on http://%s:%d (device %s)", ", ".join(served) or "no models", host, port, device)
    try:
        uvicorn.run(create_app(manager, metrics, token, max_body_bytes=max_body_bytes), host=host, port=port,
                    log_level="warning")
    finally:
        manager.close()
