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
    version_policy: list[str] = typer.Option([], "--version-policy", metavar="NAME=latest:N|NAME=V1,V2", help=(
        "Also serve these versions of a model at /v2/models/NAME/versions/V/... (repeatable); unversioned "
        "paths stay on production.")),
) -> None:
    """Serve every model of the repository that has a production alias.

    Endpoints: /v2/... (KServe v2: tritonclient.http works), /v2/repository/... (load = hot swap; admin token),
    /v1/completions and /v1/chat/completions (OpenAI, `stream: true` for SSE), /v1/models, /metrics.

    Swap a version with zero failed requests: `npusuite models promote --root DIR NAME V` (followed within
    ~1 s), or POST /v2/repository/models/NAME/load {"parameters": {"version": "V"}} with the admin token."""
    import uvicorn

    from npusuite.platform.engine import BatcherConfig, LLMConfig, ModelManager
    from npusuite.platform.engine.version_policy import parse_policy
    from npusuite.platform.repository.cli import existing_repository
    from npusuite.platform.serving.app import create_app
    from npusuite.platform.serving.listener import AnnouncingServer, bind_listener
    from npusuite.platform.serving.metrics import PlatformMetrics
    from npusuite.platform.settings import AdminSettings

    repository = existing_repository(model_root)
    policies = dict(parse_policy(spec) for spec in version_policy)
    token = admin_token or AdminSettings().admin_token
    if not token:
        logger.warning("no admin token: management endpoints are disabled")
    sock = bind_listener(host, port)  # before loading anything: a taken port fails now, not after the loads
    metrics = PlatformMetrics()
    metrics.add_infrastructure({"repository": repository.root}, device)
    manager = ModelManager(repository, device=device,
                           batcher=BatcherConfig(max_batch_size=max_batch_size, max_queue_delay_ms=max_queue_delay_ms,
                                                 max_queue_size=max_queue_size),
                           llm=LLMConfig(max_running=max_running), observer=metrics, follow_aliases=follow_aliases,
                           version_policies=policies)

    def announce(url: str) -> None:
        served = [f"{name}@{version}" for name, version in manager.served()]
        logger.info("serving %s on %s (device %s)", ", ".join(served) or "no models", url, device)

    try:
        manager.start()
        config = uvicorn.Config(create_app(manager, metrics, token, max_body_bytes=max_body_bytes),
                                log_level="warning")
        AnnouncingServer(config, announce).run(sockets=[sock])
    finally:
        sock.close()
        manager.close()
