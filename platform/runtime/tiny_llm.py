"""Builders for small causal LMs made locally: a BPE tokenizer and a random Qwen2/DeepSeek model.

Nothing is downloaded.  :func:`train_tokenizer` trains a byte-level BPE with
``tokenizers`` on the texts it is given; :func:`build_causal_lm` writes a
randomly initialised model of a standard architecture in the Hugging Face
layout (``config.json``, ``model.safetensors``, ``tokenizer.json``,
``tokenizer_config.json`` with a ChatML chat template), so it is loaded by the
same ``AutoModelForCausalLM.from_pretrained(local_dir)`` path as a real
checkpoint.  :func:`make_tiny_llm` combines both; the fraud LLM verdict model
and ``npusuite platform make-tiny-llm`` both use it.

Sizes (``SIZES``): ``tiny`` (~0.2M params, for tests and the demo), ``bench``
(~30M params, where batching and int8 effects are measurable on a CPU) and
``large`` (~0.3B params, for GPU/NPU benchmarks).
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterable
from pathlib import Path

logger = logging.getLogger(__name__)

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
ARCHITECTURES = ("qwen2", "deepseek_v3")
SIZES = {
    "tiny": {"hidden_size": 64, "intermediate_size": 176, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2, "vocab_size": 1024},
    "bench": {"hidden_size": 512, "intermediate_size": 1408, "num_hidden_layers": 8, "num_attention_heads": 8,
              "num_key_value_heads": 4, "vocab_size": 4096},
    # for accelerators (~0.3B params)
    "large": {"hidden_size": 1024, "intermediate_size": 2816, "num_hidden_layers": 16, "num_attention_heads": 16,
              "num_key_value_heads": 8, "vocab_size": 8192},
}


def default_corpus(n_lines: int = 2000, seed: int = 0) -> list[str]:
    """A small synthetic English-ish corpus about payments and inspection, made here."""
    rng = random.Random(seed)
    subjects = ["the card", "an account", "the merchant", "a transfer", "the camera", "the part", "the model",
                "a customer", "the analyst", "the line"]
    verbs = ["was approved", "was declined", "looks normal", "needs review", "shows a scratch", "passed inspection",
             "was flagged", "moved abroad", "spent more than usual", "was replaced"]
    tails = ["today", "at night", "in another country", "after a new device", "on the conveyor", "with high risk",
             "for 42.50 EUR", "twice in a minute", "as expected", "by the operator"]
    return [f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(tails)}." for _ in range(n_lines)]


def train_tokenizer(texts: Iterable[str], out_dir: Path | str, vocab_size: int = 1024):
    """Train a byte-level BPE on ``texts`` and save it as a ``PreTrainedTokenizerFast`` in ``out_dir``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(list(texts), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|pad|>",
                                   bos_token=None, unk_token=None,
                                   model_input_names=["input_ids", "attention_mask"], padding_side="left")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(str(out_dir))
    return fast


def build_causal_lm(out_dir: Path | str, tokenizer, arch: str = "qwen2", size: str = "tiny", seed: int = 0,
                    **overrides):
    """Write a random ``arch`` model sized for ``tokenizer`` into ``out_dir`` (HF layout, safetensors)."""
    import torch
    from transformers import AutoModelForCausalLM

    if arch not in ARCHITECTURES:
        raise ValueError(f"arch {arch!r}: choose one of {ARCHITECTURES}")
    if size not in SIZES:
        raise ValueError(f"size {size!r}: choose one of {tuple(SIZES)}")
    dims = {**SIZES[size], **overrides}
    dims["vocab_size"] = max(dims["vocab_size"], len(tokenizer))
    common = dict(vocab_size=dims["vocab_size"], hidden_size=dims["hidden_size"],
                  intermediate_size=dims["intermediate_size"], num_hidden_layers=dims["num_hidden_layers"],
                  num_attention_heads=dims["num_attention_heads"], num_key_value_heads=dims["num_key_value_heads"],
                  max_position_embeddings=2048, eos_token_id=tokenizer.eos_token_id,
                  pad_token_id=tokenizer.pad_token_id, bos_token_id=None, tie_word_embeddings=False)
    if arch == "qwen2":
        from transformers import Qwen2Config

        config = Qwen2Config(**common)
    else:
        from transformers import DeepseekV3Config

        head = dims["hidden_size"] // dims["num_attention_heads"]
        common["num_key_value_heads"] = dims["num_attention_heads"]  # MLA has no grouped KV heads
        config = DeepseekV3Config(**common, moe_intermediate_size=dims["intermediate_size"] // 2,
                                  n_routed_experts=4, num_experts_per_tok=2, n_shared_experts=1, n_group=1,
                                  topk_group=1, first_k_dense_replace=1, kv_lora_rank=head * 2,
                                  q_lora_rank=None, qk_rope_head_dim=head // 2, qk_nope_head_dim=head // 2,
                                  v_head_dim=head, rope_scaling=None)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(str(out_dir), safe_serialization=True)
    return model


def make_tiny_llm(out_dir: Path | str, texts: Iterable[str] | None = None, arch: str = "qwen2",
                  size: str = "tiny", seed: int = 0, vocab_size: int | None = None) -> Path:
    """Tokenizer + random model in ``out_dir``; returns the folder (loadable with ``from_pretrained``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vocab = vocab_size or SIZES[size]["vocab_size"]
    tokenizer = train_tokenizer(texts if texts is not None else default_corpus(seed=seed), out, vocab_size=vocab)
    build_causal_lm(out, tokenizer, arch=arch, size=size, seed=seed)
    (out / "npusuite.json").write_text(json.dumps({"made_by": "make_tiny_llm", "arch": arch, "size": size,
                                                   "seed": seed}) + "\n")
    logger.info("made a %s %s model in %s", size, arch, out)
    return out
