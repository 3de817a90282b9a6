"""The runtime seam: what the engine and the app adapters may call on a loaded version.

Rules:
- A loaded version is either a :class:`TensorRuntime` (named numpy tensors
  in and out, batch on the first axis; :class:`~.servable.TensorServable`) or
  a :class:`GenerativeRuntime` (a causal LM stepped by the LLM scheduler;
  :class:`~.causal_lm.CausalLM`).  :func:`~.servable.load_version` returns one
  of them, chosen by ``manifest.kind``.
- These are structural types: code that needs one of them checks with
  ``isinstance`` (both are ``runtime_checkable``), never with ``hasattr``.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class TensorRuntime(Protocol):
    """A torch module behind named numpy tensors."""

    module: Any  # the torch.nn.Module (apps that run it directly, e.g. the fraud fast model)
    memory_bytes: int

    def validate(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def warmup(self) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class GenerativeRuntime(Protocol):
    """A causal LM: tokenizer plus batched prefill/decode steps (see :mod:`.causal_lm`)."""

    memory_bytes: int

    def encode(self, text: str) -> list[int]: ...

    def decode_ids(self, ids: list[int]) -> str: ...

    def chat_prompt(self, messages: list[dict]) -> str: ...

    def prefill(self, prompts: list[list[int]]) -> tuple[Any, Any]: ...

    def decode(self, state: Any, tokens: Any) -> tuple[Any, Any]: ...

    def label_probabilities(self, prompts: list[str], labels: list[str]) -> Any: ...


Runtime = TensorRuntime | GenerativeRuntime
