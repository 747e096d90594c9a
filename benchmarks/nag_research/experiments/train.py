"""Tokenizer, packing, model, training loop and evaluation of the pretraining experiment (plain PyTorch)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

EOS = "<|endoftext|>"


def train_tokenizer(texts: Sequence[str], vocab_size: int) -> Any:
    """A byte-level BPE `tokenizers.Tokenizer` trained on ``texts`` with one special token, ``<|endoftext|>``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(list(texts), trainer=trainer)
    return tok


def encode(tok: Any, texts: Sequence[str]) -> list[list[int]]:
    return [e.ids for e in tok.encode_batch(list(texts))]


def pack(docs: Sequence[Sequence[int]], seq_len: int, n_seqs: int, eos_id: int, seed: int) -> torch.Tensor:
    """Exactly ``n_seqs`` rows of ``seq_len`` tokens: documents in a seeded shuffled order, each followed by EOS,
    concatenated and cut; when the documents run out the stream restarts with a fresh shuffle (cycling)."""
    docs = [list(d) for d in docs if len(d) > 0]
    if not docs:
        raise ValueError("nothing to pack: no non-empty documents selected")
    need = n_seqs * seq_len
    rng = np.random.default_rng(seed)
    stream: list[int] = []
    while len(stream) < need:
        for i in rng.permutation(len(docs)):
            stream += docs[i] + [eos_id]
            if len(stream) >= need:
                break
    out = torch.tensor(stream[:need], dtype=torch.long).view(n_seqs, seq_len)
    assert out.shape == (n_seqs, seq_len)
    return out


def build_model(vocab_size: int, *, hidden: int, layers: int, heads: int, intermediate: int, seq_len: int,
                seed: int) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=intermediate,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                         max_position_embeddings=seq_len, tie_word_embeddings=True, bos_token_id=None,
                         eos_token_id=None, pad_token_id=None)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    return model


def train(model: Any, seqs: torch.Tensor, *, batch_size: int, lr: float, seed: int, warmup_frac: float = 0.1,
          weight_decay: float = 0.1, checkpoints: Sequence[int] = (),
          on_checkpoint: Callable[[int], None] | None = None) -> list[float]:
    """One pass over ``seqs`` in a seeded order: AdamW, linear warmup then cosine decay to 10%, clip 1.0.
    Returns the per-step training losses. After each optimizer step ``s`` (1-based) listed in ``checkpoints``,
    ``on_checkpoint(s)`` is called (the model is put back in training mode afterwards)."""
    model.train()
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(seqs.shape[0], generator=g)
    steps = math.ceil(seqs.shape[0] / batch_size)
    warm = max(1, int(steps * warmup_frac))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=weight_decay)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        p = (step - warm) / max(1, steps - warm)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    marks = set(checkpoints)
    losses: list[float] = []
    for s in range(steps):
        batch = seqs[order[s * batch_size:(s + 1) * batch_size]]
        loss = model(input_ids=batch, labels=batch, use_cache=False).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if on_checkpoint is not None and s + 1 in marks:
            on_checkpoint(s + 1)
            model.train()
    model.eval()
    return losses


@torch.no_grad()
def mean_loss(model: Any, docs: Sequence[Sequence[int]], *, seq_len: int, batch_size: int = 16,
              eos_id: int | None = None) -> float:
    """Mean over documents of each document's mean next-token loss (nats) on its first ``seq_len`` tokens
    (EOS prepended when ``eos_id`` is given, so the first token is predicted too)."""
    model.eval()
    ids = [([eos_id] if eos_id is not None else []) + list(d) for d in docs]
    ids = [d[:seq_len] for d in ids if len(d) >= 2]
    if not ids:
        raise ValueError("no evaluation document has two tokens")
    per_doc: list[float] = []
    for start in range(0, len(ids), batch_size):
        chunk = ids[start:start + batch_size]
        width = max(len(d) for d in chunk)
        batch = torch.zeros(len(chunk), width, dtype=torch.long)
        mask = torch.zeros(len(chunk), width, dtype=torch.float32)
        for i, d in enumerate(chunk):
            batch[i, :len(d)] = torch.tensor(d)
            mask[i, :len(d)] = 1
        logits = model(input_ids=batch, attention_mask=mask.long(), use_cache=False).logits.float()
        nll = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), batch[:, 1:], reduction="none")
        m = mask[:, 1:]
        per_doc += ((nll * m).sum(1) / m.sum(1)).tolist()
    return float(np.mean(per_doc))
