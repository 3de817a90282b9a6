"""The LLM verdict model: a causal LM that answers `` fraud`` or `` legit`` for a transaction.

A transaction and its streaming features are serialised into a short prompt
(:func:`prompt_for`); the model's answer is the next token.  The scorer uses
it on the fast model's grey band only.

Rules:
- Two starting points, one code path (:func:`fine_tune`):
  * no ``base_dir`` (the default, and what CI runs): a byte-level BPE tokenizer
    is trained locally on the prompts and a small random Qwen2 (or DeepSeek-V3)
    model is built with the platform's tiny-LLM builders, then fully fine-tuned;
  * ``base_dir`` = a local Hugging Face folder, e.g. a DeepSeek-R1-Distill-Qwen
    checkpoint: its own tokenizer is used and, with ``lora=True``, only LoRA
    adapters (peft) are trained on ``device`` (``cuda``, ``npu``), then merged
    into the weights before saving.  Nothing is ever downloaded.
- Training is a classification loss on the answer token (softmax over the two
  label tokens at the last prompt position), on class-balanced batches; this
  is exactly what :meth:`CausalLM.label_probabilities` reads at inference.
- Saved in the Hugging Face layout (safetensors) plus ``card.json``; served at
  ``int8`` (torchao weight-only) by default: the card records the precision
  and how far int8 and fp32 probabilities differ on held-out prompts.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from npusuite.fraud.bundle import CARD, read_card
from npusuite.fraud.features import Features
from npusuite.fraud.schema import Transaction

logger = logging.getLogger(__name__)

LABELS = (" fraud", " legit")
PROMPT_VERSION = 1


def prompt_for(tx: Transaction, f: Features) -> str:
    """A compact, stable text form of one transaction and its key features."""
    flags = [name for name, key in (("merchant", "new_merchant"), ("device", "new_device"), ("ip", "new_ip_net"),
                                    ("country", "new_country"), ("mcc", "new_mcc")) if f[key] > 0]
    return (
        f"tx {tx.channel} mcc {tx.merchant_category} {tx.country} amt {tx.amount:.0f} "
        f"x{math.exp(f['amount_to_median_log']):.1f}med z{f['amount_z']:.1f} "
        f"new {','.join(flags) or 'none'} "
        f"n1h {math.expm1(f['cnt_1h']):.0f} n24h {math.expm1(f['cnt_24h']):.0f} "
        f"gap {math.expm1(f['since_prev_log']) / 60:.0f}m "
        f"kmh {math.expm1(f['geo_speed_log']):.0f} small10m {f['small_ecom_10m']:.0f} "
        f"atm24h {f['atm_cnt_24h']:.0f} hour {tx.timestamp.hour:02d} odd{f['hour_unusual']:.1f} "
        f"nodev {f['no_device_ecommerce']:.0f} verdict:"
    )


@dataclass(frozen=True)
class LlmTrainConfig:
    arch: str = "qwen2"           # for the locally built model: qwen2 | deepseek_v3
    size: str = "tiny"
    vocab_size: int = 512
    steps: int = 200
    batch_size: int = 32
    lr: float = 2e-3
    lora: bool = False
    lora_rank: int = 8
    device: str = "cpu"
    precision: str = "int8"       # how the saved model is meant to be served
    seed: int = 0
    threads: int = 1


class LlmVerdictModel:
    """A loaded verdict model (the platform's causal-LM runtime, classifier use)."""

    def __init__(self, lm, ref: str, card: dict):
        self.lm = lm
        self.ref = ref
        self.card = card

    @classmethod
    def load(cls, folder: Path, ref: str | None = None, device: str = "cpu", precision: str | None = None
             ) -> LlmVerdictModel:
        """Raises CorruptModelError / UserError from the platform runtime."""
        from npusuite.platform.runtime.causal_lm import CausalLM

        card = read_card(folder, ref)
        ref = ref or card.get("ref") or f"{folder.name}@local"
        lm = CausalLM.load(folder, device=device, precision=precision or card.get("precision", "int8"), ref=ref)
        return cls(lm, ref, card)

    def probabilities_for_prompts(self, prompts: list[str]) -> np.ndarray:
        return self.lm.label_probabilities(prompts, list(LABELS))[:, 0].double().numpy()

    def fraud_probabilities(self, items: Sequence[tuple[Transaction, Features]]) -> list[float]:
        return self.probabilities_for_prompts([prompt_for(tx, f) for tx, f in items]).tolist()


def _label_ids(tokenizer) -> list[int]:
    ids = [tokenizer(label, add_special_tokens=False)["input_ids"][0] for label in LABELS]
    if len(set(ids)) != 2:
        raise ValueError(f"the tokenizer does not give distinct first tokens for {LABELS}")
    return ids


def _with_lora(model, rank: int):
    """Wrap ``model`` with peft LoRA adapters on the attention projections.

    peft 0.21 asks, for every target layer, whether it is a torchao-quantised
    tensor, and that check raises outright when the installed torchao is older
    than 0.16 (we pin 0.14.1, which the platform's int8 path uses).  Training
    always starts from float weights here (int8 comes after the merge), so the
    answer is "no" and the check is skipped for the duration of the wrap only.
    """
    from unittest import mock

    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, task_type="CAUSAL_LM",
                        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
    with mock.patch("peft.tuners.lora.torchao.is_torchao_available", return_value=False):
        return get_peft_model(model, config)


def _build_base(prompts: list[str], work: Path, config: LlmTrainConfig) -> Path:
    from npusuite.platform.runtime.tiny_llm import make_tiny_llm

    texts = [p + LABELS[i % 2] for i, p in enumerate(prompts)]
    return make_tiny_llm(work, texts=texts, arch=config.arch, size=config.size, seed=config.seed,
                         vocab_size=config.vocab_size)


def fine_tune(prompts: list[str], labels: np.ndarray, out_dir: Path, config: LlmTrainConfig = LlmTrainConfig(),
              base_dir: Path | None = None, holdout: tuple[list[str], np.ndarray] | None = None,
              progress: bool = True) -> dict:
    """Fine-tune a verdict model on (prompt, is_fraud) pairs and save it in ``out_dir``.

    Returns the card (also written to ``out_dir/card.json``).  Raises ValueError when one
    class is missing; UserError subclasses for a bad base folder or an unavailable device.
    """
    import torch
    from tqdm import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from npusuite.platform.runtime.devices import get_device

    labels = np.asarray(labels, dtype=bool)
    if labels.all() or not labels.any():
        raise ValueError("LLM fine-tuning needs both fraud and legitimate examples")
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    rng = np.random.default_rng(config.seed)
    device = get_device(config.device)
    work = Path(tempfile.mkdtemp(prefix="fraud-llm-"))
    try:
        source = base_dir if base_dir is not None else _build_base(prompts, work, config)
        if base_dir is not None and not (Path(base_dir) / "config.json").is_file():
            from npusuite.platform.errors import NotFoundError

            raise NotFoundError(f"{base_dir}: not a Hugging Face model folder (no config.json)")
        tokenizer = AutoTokenizer.from_pretrained(str(source), local_files_only=True)
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        dtype = torch.float32 if device.name == "cpu" else device.dtype_for("bf16")
        model = AutoModelForCausalLM.from_pretrained(str(source), local_files_only=True, dtype=dtype)
        model.to(device.torch_device())
        if config.lora:
            model = _with_lora(model, config.lora_rank)
        label_ids = torch.tensor(_label_ids(tokenizer), device=device.torch_device())
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr,
                                weight_decay=0.0)
        pos_idx, neg_idx = np.flatnonzero(labels), np.flatnonzero(~labels)
        model.train()
        bar = tqdm(range(config.steps), desc="LLM verdict", unit="step", disable=not progress, mininterval=1.0)
        for _step in bar:
            half = config.batch_size // 2
            idx = np.concatenate([rng.choice(pos_idx, half), rng.choice(neg_idx, config.batch_size - half)])
            enc = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
            enc = {k: v.to(device.torch_device()) for k, v in enc.items()}
            logits = model(**enc).logits[:, -1, :].index_select(-1, label_ids).float()
            target = torch.from_numpy((~labels[idx]).astype(np.int64)).to(logits.device)  # 0 = fraud, 1 = legit
            loss = torch.nn.functional.cross_entropy(logits, target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        model.eval()
        if config.lora:
            model = model.merge_and_unload()
        out_dir.mkdir(parents=True, exist_ok=True)
        model.to("cpu").save_pretrained(str(out_dir), safe_serialization=True)
        tokenizer.save_pretrained(str(out_dir))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    card = {"kind": "fraud-llm-verdict", "prompt_version": PROMPT_VERSION, "labels": list(LABELS),
            "precision": config.precision, "base": str(base_dir) if base_dir else f"local {config.arch} {config.size}",
            "training": {**asdict(config), "examples": len(prompts), "fraud_examples": int(labels.sum())}}
    if holdout is not None and len(holdout[0]):
        card["holdout"] = _holdout_metrics(out_dir, holdout, config)
    (out_dir / CARD).write_text(json.dumps(card, indent=2) + "\n")
    logger.info("LLM verdict model saved in %s (%s)", out_dir, card.get("holdout"))
    return card


def _holdout_metrics(folder: Path, holdout: tuple[list[str], np.ndarray], config: LlmTrainConfig) -> dict:
    from sklearn.metrics import average_precision_score

    prompts, y = holdout
    out: dict = {"examples": len(prompts), "fraud": int(np.sum(y))}
    probs = {}
    for precision in ("fp32", config.precision):
        model = LlmVerdictModel.load(folder, ref="holdout", precision=precision)
        probs[precision] = np.concatenate([model.probabilities_for_prompts(prompts[i:i + 64])
                                           for i in range(0, len(prompts), 64)])
    p = probs[config.precision]
    if 0 < np.sum(y) < len(y):
        out["average_precision"] = round(float(average_precision_score(y, p)), 4)
    out["accuracy_at_0.5"] = round(float(np.mean((p >= 0.5) == y)), 4)
    out[f"max_abs_diff_{config.precision}_vs_fp32"] = round(float(np.max(np.abs(p - probs["fp32"]))), 5)
    return out
