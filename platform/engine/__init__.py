"""The engine room: dynamic batching, iteration-level LLM scheduling, and hot swap of model versions."""

from npusuite.platform.engine.batcher import BatcherConfig, DynamicBatcher
from npusuite.platform.engine.errors import (
    DeadlineExceededError,
    EngineBusyError,
    EngineClosedError,
    ModelNotReadyError,
    SwapError,
)
from npusuite.platform.engine.llm_scheduler import GenerationStream, LLMConfig, LLMScheduler, TokenEvent
from npusuite.platform.engine.manager import ModelManager
from npusuite.platform.engine.model_engine import InferResult, ModelEngine
from npusuite.platform.engine.sampling import SamplingParams

__all__ = ["BatcherConfig", "DeadlineExceededError", "DynamicBatcher", "EngineBusyError", "EngineClosedError",
           "GenerationStream", "InferResult", "LLMConfig", "LLMScheduler", "ModelEngine", "ModelManager",
           "ModelNotReadyError", "SamplingParams", "SwapError", "TokenEvent"]
