"""Causal-LM runtime: load a local Hugging Face checkpoint and run batched prefill/decode steps.

This is the model room for LLMs; the iteration-level scheduler
(``npusuite.platform.engine.llm_scheduler``) drives it one step at a time.

Rules:
- Loading is ``AutoModelForCausalLM.from_pretrained(local_dir)`` (Qwen2 and
  DeepSeek architectures, any other HF causal LM too), never a hub download
  (``local_files_only``).  Precision ``fp32``/``bf16``/``fp16`` sets the
  weight dtype; ``int8`` is torchao weight-only int8 (``quantize_`` with
  ``Int8WeightOnlyConfig``) on top of the device's float dtype.
- A running batch is a :class:`BatchState`: the KV cache of every layer,
  left-padded to a common length, with an attention mask marking the real
  positions and each row's next position id.  Rows can be added
  (:meth:`CausalLM.merge`) and removed (:meth:`CausalLM.select`) between
  decode steps, which is what lets a new request join a running batch.
- With a prefix cache (``prefix_cache``, set by the scheduler that owns the
  model; see ``npusuite.platform.engine.prefix_cache``), :meth:`CausalLM.prefill`
  copies the cached KV of each prompt's longest cached leading blocks into the
  batch and computes only the rest; prompts are grouped by the prefix they
  hit.  When several prompts of one batch share leading blocks that are not
  cached yet, that shared prefix is prefilled once first.  Every full block a
  prefill computed is offered to the cache.  The cached KV of a position is the
  KV a plain prefill computes there (same tokens, same position id), so
  outputs match a prefill without the cache up to float rounding.
- Decode has two KV layouts.  ``dynamic`` (default): the model's
  ``DynamicCache``, grown by one column per step and re-padded when rows join.
  ``static`` (``StaticKVConfig``): preallocated slots never rebuilt
  (:mod:`kv_cache`), and the step captured as a device graph where the device
  class can (:mod:`decode_graphs`), eager otherwise.  Prefill is the same for
  both; joining copies the prefill's KV into free slots.
- Everything runs under ``torch.inference_mode``; the runtime holds no locks:
  one scheduler thread owns a model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from npusuite.platform.errors import UserError
from npusuite.platform.repository.manifest import CorruptModelError
from npusuite.platform.runtime.decode_graphs import DecodeRunner
from npusuite.platform.runtime.devices import Device, get_device
from npusuite.platform.runtime.kv_cache import SlotState, StaticKVCache, StaticKVConfig
from npusuite.platform.runtime.prefix_prefill import prefill_with_prefixes

logger = logging.getLogger(__name__)


@dataclass
class BatchState:
    """The KV cache of a running batch; row i belongs to the i-th running request."""

    #: the model's own ``DynamicCache``, kept across steps (no copy per step); every layer's keys and
    #: values are [rows, heads, length, head_dim], left-padded to a common length.
    cache: object
    #: [rows, length] 1 where a cached position is real, 0 where it is padding.
    attention_mask: torch.Tensor
    #: [rows] position id the next token of each row gets (= its real length so far).
    next_position: torch.Tensor

    @property
    def rows(self) -> int:
        return int(self.attention_mask.shape[0])


def tensor_bytes(t: torch.Tensor) -> int:
    """Bytes held by a tensor, looking inside tensor subclasses (torchao int8 weights)."""
    if hasattr(t, "__tensor_flatten__") and type(t) is not torch.Tensor and type(t) is not torch.nn.Parameter:
        names, _ = t.__tensor_flatten__()
        return sum(tensor_bytes(getattr(t, n)) for n in names)
    return t.numel() * t.element_size()


def module_bytes(module: torch.nn.Module) -> int:
    seen, total = set(), 0
    for t in list(module.parameters()) + list(module.buffers()):
        if id(t) not in seen:
            seen.add(id(t))
            total += tensor_bytes(t.data if isinstance(t, torch.nn.Parameter) else t)
    return total


def quantize_int8_weight_only(model: torch.nn.Module) -> torch.nn.Module:
    """torchao weight-only int8 for every ``nn.Linear`` (in place)."""
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    quantize_(model, Int8WeightOnlyConfig())
    return model


class CausalLM:
    """A loaded causal LM plus its tokenizer on one device."""

    def __init__(self, model, tokenizer, device: Device, precision: str, ref: str = "local",
                 static_kv: StaticKVConfig | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.precision = precision
        self.ref = ref
        self.eos_token_id = tokenizer.eos_token_id
        self.memory_bytes = module_bytes(model)
        config = getattr(model, "config", None)
        #: token ids a prompt may hold (the embedding's rows); the scheduler refuses others at the door.
        self.vocab_size: int | None = getattr(config, "vocab_size", None)
        #: prompt + generated tokens one sequence may reach; every generation is capped by it.
        self.max_context: int | None = getattr(config, "max_position_embeddings", None)
        #: a PrefixCache (engine) or None; the scheduler that owns this model sets it.
        self.prefix_cache = None
        self.kv_layout = "dynamic"
        self._static: StaticKVCache | None = None
        if static_kv is not None:
            self.kv_layout = "static"
            self._static = StaticKVCache(static_kv, device.torch_device())
            self.max_context = min(self.max_context or static_kv.max_tokens, static_kv.max_tokens)
            #: rows one decode step may hold (the scheduler caps ``max_running`` to it)
            self.max_rows = static_kv.max_slots
            mask_dtype = model.get_input_embeddings().weight.dtype
            self._runner = DecodeRunner(model, self._static, device, mask_dtype)

    @classmethod
    def load(cls, folder: Path | str, device: str | Device = "cpu", precision: str = "fp32",
             ref: str = "local", static_kv: StaticKVConfig | None = None) -> CausalLM:
        """Load from a local folder.  Raises CorruptModelError on unreadable files, UserError on bad precision."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        dev = get_device(device)
        dtype = dev.dtype_for(precision)
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True, dtype=dtype)
        except (OSError, ValueError, RuntimeError) as exc:
            raise CorruptModelError(f"{folder}: cannot load causal LM: {str(exc).splitlines()[0]}") from None
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        model = model.to(dev.torch_device()).eval()
        if precision == "int8":
            quantize_int8_weight_only(model)
        logger.info("loaded causal LM %s (%s, %s on %s)", ref, type(model).__name__, precision, dev.name)
        return cls(model, tokenizer, dev, precision, ref, static_kv=static_kv)

    # ---- text <-> ids --------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if not ids:
            raise UserError("the prompt is empty after tokenisation")
        return ids

    def chat_prompt(self, messages: list[dict]) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def decode_ids(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    # ---- batched steps -------------------------------------------------------------------
    @torch.inference_mode()
    def prefill(self, prompts: list[list[int]]) -> tuple[torch.Tensor, BatchState]:
        """Run the prompts (left-padded together); returns last-position logits [n, vocab] and their state."""
        if self.prefix_cache is None:
            return self.prefill_after(prompts, [])
        return prefill_with_prefixes(self, prompts, self.prefix_cache)

    @torch.inference_mode()
    def prefill_after(self, prompts: list[list[int]], prefix: list[tuple[torch.Tensor, torch.Tensor]]
                      ) -> tuple[torch.Tensor, BatchState]:
        """Prefill prompts that all start with the same ``P`` tokens whose KV is given (``prefix``: per layer
        keys and values [heads, P, head_dim]; empty: none); only the rest of each prompt is computed.
        The batch's KV is [prefix][left padding][rest of the prompt], the mask marks the padding."""
        from transformers import DynamicCache

        dev = self.device.torch_device()
        done = prefix[0][0].shape[1] if prefix else 0
        prompts = [p[done:] for p in prompts]
        length = max(len(p) for p in prompts)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(prompts), length), pad, dtype=torch.long)
        mask = torch.zeros((len(prompts), length), dtype=torch.long)
        for i, p in enumerate(prompts):
            ids[i, length - len(p):] = torch.tensor(p)
            mask[i, length - len(p):] = 1
        mask = torch.cat([torch.ones((len(prompts), done), dtype=torch.long), mask], dim=1)
        ids, mask = ids.to(dev), mask.to(dev)
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)[:, done:]
        n = len(prompts)
        # the shared prefix is expanded (a view), the model's first update copies it into each row
        past = tuple((k.unsqueeze(0).expand(n, -1, -1, -1), v.unsqueeze(0).expand(n, -1, -1, -1)) for k, v in prefix)
        cache = DynamicCache.from_legacy_cache(past) if prefix else DynamicCache()
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=position_ids,
                         past_key_values=cache, use_cache=True, logits_to_keep=1)
        return out.logits[:, -1, :].float(), BatchState(cache, mask, mask.sum(-1))

    @torch.inference_mode()
    def decode(self, state: BatchState | SlotState, tokens: torch.Tensor) -> tuple[torch.Tensor, BatchState]:
        """One decode step for every row: feed ``tokens`` [rows]; returns logits [rows, vocab] and the new state."""
        if isinstance(state, SlotState):
            return self._decode_slots(state, tokens)
        dev = self.device.torch_device()
        mask = torch.cat([state.attention_mask, torch.ones((state.rows, 1), dtype=torch.long, device=dev)], dim=1)
        # the cache grows in place (one concatenation per layer, as in `generate`)
        out = self.model(input_ids=tokens.view(-1, 1).to(dev), attention_mask=mask,
                         position_ids=state.next_position.view(-1, 1), past_key_values=state.cache, use_cache=True)
        return out.logits[:, -1, :].float(), BatchState(state.cache, mask, state.next_position + 1)

    def _decode_slots(self, state: SlotState, tokens: torch.Tensor) -> tuple[torch.Tensor, SlotState]:
        kv = self._static
        kv.prepare(state.slots, tokens)
        logits = self._runner.run(kv.bucket_for(state.slots))
        rows = logits.index_select(0, torch.tensor(state.slots, dtype=torch.long, device=logits.device)).float()
        if state.owner:  # a probe's write at each row's length is overwritten by the real step
            kv.commit(state.slots)
        return rows, state

    @property
    def decode_modes(self) -> dict[int, str]:
        """How each bucket of the static path decoded ("graph" or "eager"); empty on the dynamic path."""
        return dict(self._runner.modes) if self._static is not None else {}

    def merge(self, a: BatchState | SlotState | None, b: BatchState) -> BatchState | SlotState:
        """Rows of ``a`` then rows of ``b``.  Dynamic: left-pads the shorter cache and reuses (mutates) ``a``'s.
        Static (``a`` a SlotState or None): copies ``b``'s KV into free slots; ``a`` None means no row is
        running, so every slot is free."""
        if self._static is not None and not isinstance(a, BatchState):
            if a is None:
                self._static.release_all()
            slots = self._static.join(b.cache, b.attention_mask)
            return SlotState((a.slots if a is not None else []) + slots)
        return self._merge_dynamic(a, b)

    @staticmethod
    def _merge_dynamic(a: BatchState | None, b: BatchState) -> BatchState:
        if a is None or a.rows == 0:
            return b
        la, lb = a.attention_mask.shape[1], b.attention_mask.shape[1]
        length = max(la, lb)

        def pad(t: torch.Tensor, by: int, dim: int) -> torch.Tensor:
            if by == 0:
                return t
            shape = list(t.shape)
            shape[dim] = by
            return torch.cat([t.new_zeros(shape), t], dim=dim)

        for layer_a, layer_b in zip(a.cache.layers, b.cache.layers, strict=True):
            layer_a.keys = torch.cat([pad(layer_a.keys, length - la, 2), pad(layer_b.keys, length - lb, 2)])
            layer_a.values = torch.cat([pad(layer_a.values, length - la, 2), pad(layer_b.values, length - lb, 2)])
        mask = torch.cat([pad(a.attention_mask, length - la, 1), pad(b.attention_mask, length - lb, 1)])
        return BatchState(a.cache, mask, torch.cat([a.next_position, b.next_position]))

    @staticmethod
    def checkpoint(state: BatchState | SlotState | None) -> list[int]:
        """The cached length of every layer, so a failed :meth:`decode` can be undone with :meth:`rollback`
        (static slots: nothing to undo, lengths advance only after a step succeeded)."""
        if state is None or isinstance(state, SlotState):
            return []
        return [int(layer.keys.shape[2]) if getattr(layer, "keys", None) is not None else 0
                for layer in state.cache.layers]

    @staticmethod
    def rollback(state: BatchState | SlotState | None, lengths: list[int]) -> None:
        """Cut every layer back to its :meth:`checkpoint` length (a decode that raised may have grown some)."""
        if state is None or isinstance(state, SlotState):
            return
        for layer, length in zip(state.cache.layers, lengths, strict=False):
            if getattr(layer, "keys", None) is not None and layer.keys.shape[2] > length:
                layer.keys = layer.keys[:, :, :length]
                layer.values = layer.values[:, :, :length]

    @staticmethod
    def copy_state(state: BatchState | SlotState) -> BatchState | SlotState:
        """An independent copy (for probing rows after a failed step; :meth:`select` mutates its input).
        Static: a non-owning view of the same slots (its decode commits nothing, its select frees nothing)."""
        import copy

        if isinstance(state, SlotState):
            return SlotState(list(state.slots), owner=False)
        return BatchState(copy.deepcopy(state.cache), state.attention_mask.clone(), state.next_position.clone())

    def select(self, state: BatchState | SlotState, keep: list[int]) -> BatchState | SlotState | None:
        """Keep only rows ``keep`` (in that order) and drop columns that are padding for all of them
        (static: free the slots of the rows not kept)."""
        if isinstance(state, SlotState):
            kept = [state.slots[i] for i in keep]
            if state.owner:
                self._static.release(sorted(set(state.slots) - set(kept)))
            return SlotState(kept, state.owner) if kept else None
        if not keep:
            return None
        idx = torch.tensor(keep, dtype=torch.long, device=state.attention_mask.device)
        mask = state.attention_mask.index_select(0, idx)
        real = mask.any(dim=0).nonzero()
        start = int(real[0]) if len(real) else 0
        for layer in state.cache.layers:
            layer.keys = layer.keys.index_select(0, idx)[:, :, start:]
            layer.values = layer.values.index_select(0, idx)[:, :, start:]
        return BatchState(state.cache, mask[:, start:], state.next_position.index_select(0, idx))

    # ---- classifier use ------------------------------------------------------------------
    @torch.inference_mode()
    def label_probabilities(self, prompts: list[str], labels: list[str]) -> torch.Tensor:
        """P(label | prompt) over ``labels`` for each prompt, in ONE batched forward pass (no generation).

        Each label is scored by its first token; labels must start with distinct
        tokens (raises UserError otherwise).  Returns [len(prompts), len(labels)],
        rows summing to 1 (softmax restricted to the label tokens).
        """
        first = [self.encode(label)[0] for label in labels]
        if len(set(first)) != len(first):
            raise UserError(f"labels {labels} do not start with distinct tokens")
        logits, _ = self.prefill([self.encode(p) for p in prompts])
        return torch.softmax(logits[:, first], dim=-1).cpu()

    # ---- baselines (plain transformers, used by the benchmarks) --------------------------
    @torch.inference_mode()
    def generate_offline(self, prompts: list[str], max_new_tokens: int) -> list[list[int]]:
        """One ``model.generate`` call over all prompts (greedy); returns the new token ids per prompt."""
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(self.device.torch_device()) for k, v in enc.items()}
        out = self.model.generate(**enc, max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens,
                                  do_sample=False, pad_token_id=self.tokenizer.pad_token_id)
        return [row[enc["input_ids"].shape[1]:].tolist() for row in out]
