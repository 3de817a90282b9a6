"""App adapters: how an app turns a loaded version into its own per-version object, owned by the engine.

An adapter is the app's half of hot swap (the shape of LitServe's ``LitAPI``:
setup / predict).  The engine calls it for every version it loads, BEFORE
switching to it:

1. ``build(version, runtime) -> app``: construct the app's per-version object
   (read the card, check the feature set or the input size, quantise ...);
   raise ``UserError``/``ValueError`` when the version does not fit the app;
2. ``warm(app)``: run one representative request end to end; raise on failure;
3. the engine creates the one worker ``worker(version)`` declares:

   * ``"batcher"``: a :class:`~.batcher.DynamicBatcher` whose batches run
     ``predict(app, inputs)`` (``validate(app, inputs)`` runs at submit time);
   * ``"scheduler"``: the iteration-level LLM scheduler over the runtime;
   * ``"direct"``: no worker.  The caller runs ``lease.app`` itself under a
     lease.  Right when the caller already forms its batches (the fraud fast
     model gets a whole Kafka poll at once) and its latency budget cannot
     afford a hand-off to a batcher thread and back.

Any exception in 1-3 means the version is refused (``SwapError``, HTTP 409 on
the management API) and the old version keeps serving, so an app-level
incompatibility is found before the switch, not in the first request after it.

:class:`ServingAdapter` is the default (no app adapter given): the app object
is the runtime itself, tensor models get a batcher and causal LMs a scheduler
(what the platform's HTTP server serves).
"""

from __future__ import annotations

import logging
from typing import Any, Literal, Protocol, TypeVar

import numpy as np

from npusuite.platform.errors import UserError
from npusuite.platform.repository.store import ModelVersion
from npusuite.platform.runtime.protocols import GenerativeRuntime, Runtime, TensorRuntime

logger = logging.getLogger(__name__)

WorkerKind = Literal["batcher", "scheduler", "direct"]
WORKER_KINDS: tuple[WorkerKind, ...] = ("batcher", "scheduler", "direct")

AppT = TypeVar("AppT")
Tensors = dict[str, np.ndarray]


class AppAdapter(Protocol[AppT]):
    """Per-version app objects for one engine (see the module rules).

    Subclass it explicitly to inherit the defaults of ``validate`` (no check) and ``predict``
    (refused: only ``"batcher"`` adapters need it)."""

    def worker(self, version: ModelVersion) -> WorkerKind:
        """The worker the engine runs for ``version``."""
        ...

    def build(self, version: ModelVersion, runtime: Runtime) -> AppT:
        """The app's object for ``version``.  Raises UserError/ValueError when it does not fit the app."""
        ...

    def warm(self, app: AppT) -> None:
        """One representative request end to end.  Raises on failure."""
        ...

    def validate(self, app: AppT, inputs: Tensors) -> Tensors:
        """Check one request before it is queued (``"batcher"`` only); raise UserError/ValueError."""
        return inputs

    def predict(self, app: AppT, inputs: Tensors) -> Tensors:
        """One formed batch (``"batcher"`` only): named arrays in, named arrays out, batch on axis 0."""
        raise UserError(f"{type(self).__name__} has no batched predict")


class ServingAdapter(AppAdapter[Runtime]):
    """The default: the runtime is the app; tensors -> batcher, causal LMs -> scheduler."""

    def worker(self, version: ModelVersion) -> WorkerKind:
        return "scheduler" if version.manifest.kind == "causal-lm" else "batcher"

    def build(self, version: ModelVersion, runtime: Runtime) -> Runtime:
        return runtime

    def warm(self, app: Runtime) -> None:
        # A causal LM is warmed through its scheduler by the engine (a short generation).
        if isinstance(app, TensorRuntime):
            app.warmup()

    def validate(self, app: Runtime, inputs: Tensors) -> Tensors:
        if not isinstance(app, TensorRuntime):
            raise UserError("this version is a causal LM; use generate()")
        return app.validate(inputs)

    def predict(self, app: Runtime, inputs: Tensors) -> Tensors:
        if not isinstance(app, TensorRuntime):
            raise UserError("this version is a causal LM; use generate()")
        return app.predict(inputs)


def require_tensor(runtime: Runtime, version: ModelVersion) -> TensorRuntime:
    """The runtime as a tensor model, or UserError naming the version (for app adapters)."""
    if not isinstance(runtime, TensorRuntime):
        raise UserError(f"{version.ref} is a {version.manifest.kind}, not a tensor model")
    return runtime


def require_generative(runtime: Runtime, version: ModelVersion) -> GenerativeRuntime:
    """The runtime as a causal LM, or UserError naming the version (for app adapters)."""
    if not isinstance(runtime, GenerativeRuntime):
        raise UserError(f"{version.ref} is a {version.manifest.kind}, not a causal LM")
    return runtime


def check_worker_kind(kind: Any, version: ModelVersion) -> WorkerKind:
    if kind not in WORKER_KINDS:
        raise UserError(f"{version.ref}: the app adapter asked for worker {kind!r} (known: {WORKER_KINDS})")
    return kind
