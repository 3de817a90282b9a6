"""The LLM verdict model: the --llm-base/--llm-lora path (a local HF folder + peft LoRA), int8 serving."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from npusuite.fraud.features import AccountState, advance
from npusuite.fraud.llm_verdict import LABELS, LlmTrainConfig, LlmVerdictModel, fine_tune, prompt_for
from npusuite.fraud.schema import Transaction
from npusuite.platform.runtime.tiny_llm import make_tiny_llm


def _prompts(n: int) -> tuple[list[str], np.ndarray]:
    state = AccountState()
    prompts, y = [], []
    t0 = datetime(2026, 3, 2, tzinfo=UTC)
    for i in range(n):
        fraud = i % 4 == 0
        tx = Transaction(transaction_id=f"t{i}", timestamp=t0 + timedelta(minutes=30 * i), account_id="A",
                         card_id="C", amount=900.0 if fraud else 20.0 + i % 7, currency="GBP",
                         merchant_id=f"P{i}" if fraud else "M1", merchant_category="4829" if fraud else "5411",
                         channel="transfer" if fraud else "card_present", country="GB",
                         lat=None if fraud else 51.5, lon=None if fraud else -0.1,
                         device_id=f"D{i}" if fraud else None, ip="5.5.5.5" if fraud else None)
        prompts.append(prompt_for(tx, advance(state, tx)))
        y.append(fraud)
    return prompts, np.array(y)


def test_lora_fine_tune_of_a_local_base_folder_then_int8(tmp_path):
    prompts, y = _prompts(64)
    base = make_tiny_llm(tmp_path / "base", texts=[p + LABELS[i % 2] for i, p in enumerate(prompts)], seed=1,
                         vocab_size=400)
    card = fine_tune(prompts, y, tmp_path / "tuned", LlmTrainConfig(steps=25, batch_size=8, lora=True, lr=5e-3),
                     base_dir=base, holdout=(prompts[:16], y[:16]), progress=False)
    assert card["base"] == str(base) and card["training"]["lora"] is True
    assert (tmp_path / "tuned" / "model.safetensors").is_file()
    assert not (tmp_path / "tuned" / "adapter_config.json").exists()  # LoRA merged into the weights
    model = LlmVerdictModel.load(tmp_path / "tuned", ref="fraud-llm@test")
    assert model.lm.precision == "int8"
    p = model.probabilities_for_prompts(prompts[:8])
    assert p.shape == (8,) and np.all((p >= 0) & (p <= 1))
    assert card["holdout"]["max_abs_diff_int8_vs_fp32"] < 0.1


def test_deepseek_v3_architecture_trains_and_serves_int8(tmp_path):
    prompts, y = _prompts(48)
    card = fine_tune(prompts, y, tmp_path / "ds", LlmTrainConfig(arch="deepseek_v3", steps=10, batch_size=8),
                     progress=False)
    assert card["base"] == "local deepseek_v3 tiny"
    model = LlmVerdictModel.load(tmp_path / "ds", ref="fraud-llm@ds")
    assert type(model.lm.model).__name__ == "DeepseekV3ForCausalLM"
    p = model.probabilities_for_prompts(prompts[:4])
    assert np.all((p >= 0) & (p <= 1))
