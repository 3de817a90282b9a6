"""Engine errors, split by who should act: the caller (retry later, fix input) or the operator."""

from __future__ import annotations

from npusuite.platform.errors import UserError


class EngineBusyError(Exception):
    """The bounded queue is full; retry after ``retry_after_s`` (HTTP 503 + Retry-After)."""

    def __init__(self, message: str, retry_after_s: float = 1.0):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class DeadlineExceededError(Exception):
    """The request waited past its deadline and was not run (HTTP 504)."""


class EngineClosedError(Exception):
    """The engine (or this version of it) no longer accepts requests."""


class ModelNotReadyError(UserError):
    """No version of this model is loaded (HTTP 400/404 for the caller)."""


class SwapError(UserError):
    """Loading or warming a new version failed; the old version keeps serving."""


class InvalidParameterError(UserError, ValueError):
    """A request parameter is out of its range (HTTP 400); ``param`` names it (OpenAI's error ``param``)."""

    def __init__(self, param: str, message: str):
        super().__init__(message)
        self.param = param


class GenerationError(RuntimeError):
    """A generation failed inside the engine (HTTP 500); other generations of the same step carry on."""
