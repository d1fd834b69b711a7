"""Training steps, the same wherever they run: a fine-tuning run (:mod:`knowshift.study.finetune`),
``make gpu-check`` and ``knowshift plan --measure``. Torch and peft only, so the GPU check runs
where the study's analysis libraries are not installed.

Closed-book QA format: the prompt ``Q: <question>\\nA:`` and the target `` <answer>\\n``; the loss
is on the target tokens only (labels come from the prompt length and the attention mask, never
from the pad id, which is also the end-of-sequence id of SmolLM2). The output layer is applied
only where the loss is read (the answer tokens), and AdamW runs fused."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

from ..core.params import check_config, default
from ..core.schema import QA_TEMPLATE, format_question, format_target
from . import work
from .encoding import encode_split
from .models import autocast

# LoRA adapts every attention and MLP projection of a Llama-style model.
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class FinetuneConfig:
    """Fine-tuning settings; each field is the parameter of the same name (``knowshift
    params``), with its declared default."""
    method: str = default("method")                 # "full" or "lora"
    epochs: int = default("epochs")
    learning_rate: float = default("learning_rate")
    ft_batch_size: int = default("ft_batch_size")
    weight_decay: float = default("weight_decay")
    lora_r: int = default("lora_r")
    eval_batch_size: int = default("eval_batch_size")
    max_new_tokens: int = default("max_new_tokens")
    precision: str = default("precision")
    prompt_template: str = default("prompt_template")
    seed: int = 0                # one of the ``seeds`` parameter's, set per run

    def __post_init__(self):
        check_config(self)

    @property
    def lora_alpha(self) -> int:
        return 2 * self.lora_r

    @classmethod
    def from_params(cls, params) -> "FinetuneConfig":
        """The config of ``params`` with seed 0 (each run sets its own from ``seeds``)."""
        return cls(**{f.name: params[f.name] for f in fields(cls) if f.name != "seed"})


def encode(tok, questions: list[str], targets: list[str], template: str = QA_TEMPLATE
           ) -> list[tuple[list[int], int]]:
    """(token ids of prompt + target, prompt length) per example: the whole text encoded as
    every other path encodes it (:func:`knowshift.engine.encoding.encode_split`), so the prompt's ids
    are those evaluation feeds and the loss is read on the ids the target has in the whole
    sequence."""
    return [encode_split(tok, format_question(q, template), format_target(t, template))
            for q, t in zip(questions, targets)]


def collate(examples: list[tuple[list[int], int]], pad_id: int):
    """Right-padded batch to its longest example; labels are -100 on prompt and padding."""
    width = max(len(ids) for ids, _ in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for i, (seq, n_prompt) in enumerate(examples):
        ids[i, :len(seq)] = torch.tensor(seq)
        mask[i, :len(seq)] = 1
        labels[i, n_prompt:len(seq)] = torch.tensor(seq[n_prompt:])
    return ids, mask, labels


def answer_loss(model, ids, mask, labels) -> torch.Tensor:
    """Mean cross-entropy over the answer tokens (the positions whose label is not -100), as
    the model's own loss, with the output layer applied to those positions only."""
    with autocast(model):
        hidden = model.get_decoder()(input_ids=ids, attention_mask=mask,
                                     use_cache=False).last_hidden_state
    target = labels[:, 1:]
    picked = target != -100
    head = model.get_output_embeddings()
    logits = F.linear(hidden[:, :-1][picked].float(), head.weight.float(),
                      None if head.bias is None else head.bias.float())
    return F.cross_entropy(logits, target[picked])


def prepare(model, config: FinetuneConfig):
    """The model to train: for LoRA, fresh adapters on the (frozen) base model; remove them
    with :func:`release` to get the base model back unchanged."""
    if config.method == "lora":
        from peft import LoraConfig, get_peft_model
        model = get_peft_model(model, LoraConfig(
            r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=0.0,
            target_modules=list(LORA_TARGETS), task_type="CAUSAL_LM"))
    return model


def release(model, config: FinetuneConfig):
    """The base model of a LoRA model, its adapters removed (not merged)."""
    return model.unload() if config.method == "lora" else model


def make_optimizer(model, config: FinetuneConfig) -> torch.optim.Optimizer:
    """AdamW (fused: one kernel for all parameters) over the trainable parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay,
                             fused=True)


def train_epoch(model, optim, data: list[tuple[list[int], int]], order: list[int],
                batch_size: int, pad_id: int) -> list[float]:
    """One pass over ``data`` in ``order``, one optimiser step per batch; the step losses."""
    losses = []
    for s in range(0, len(order), batch_size):
        batch = [data[i] for i in order[s:s + batch_size]]
        work.count(trained_examples=len(batch), train_steps=1,
                   trained_tokens=sum(len(ids) for ids, _ in batch))
        ids, mask, labels = (t.to(model.device) for t in collate(batch, pad_id))
        loss = answer_loss(model, ids, mask, labels)
        loss.backward()
        optim.step()
        optim.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses
