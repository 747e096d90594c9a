"""Measurements on a causal LM over real texts: per-document loss, multiple-choice accuracy, embeddings, impacts.

Every function batches right-padded documents sorted by length (positions of real tokens never depend on the
batch), tokenizes with ``add_special_tokens=False`` and keeps the first ``max_length`` tokens, as the featurizer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from nag_datasets.featurize.batching import length_sorted_batches
from nag_datasets.featurize.impact import ImpactRecorder, base_model, top_k_indices
from nag_datasets.featurize.textcut import first_token_ids

__all__ = [
    "document_losses",
    "mean_impacts",
    "mean_pooled_embeddings",
    "mmlu_items",
    "multiple_choice_accuracy",
    "token_ids",
]

_MMLU_ANSWER = re.compile(r"\nAnswer: ([ABCD])\s*$")
LETTERS = ("A", "B", "C", "D")


def token_ids(texts: Sequence[str], tokenizer: Any, max_length: int) -> list[list[int]]:
    """First ``max_length`` token ids of each text (no special tokens)."""
    return [first_token_ids(t, tokenizer, max_length, False)[0] for t in texts]


def _pad_id(tokenizer: Any) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


@torch.inference_mode()
def document_losses(model: nn.Module, tokenizer: Any, texts: Sequence[str], *, max_length: int = 120,
                    batch_size: int = 16) -> np.ndarray:
    """Mean next-token negative log-likelihood (nats) of each document; NaN for documents under two tokens."""
    ids = token_ids(texts, tokenizer, max_length)
    out = np.full(len(ids), np.nan)
    live = [i for i, x in enumerate(ids) if len(x) >= 2]
    device = next(model.parameters()).device
    for chunk, batch, mask in length_sorted_batches([ids[i] for i in live], batch_size, _pad_id(tokenizer)):
        logits = model(input_ids=batch.to(device), attention_mask=mask.to(device), use_cache=False).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1)
        nll = -logp.gather(-1, batch[:, 1:, None].to(device))[..., 0]
        m = mask[:, 1:].to(device, torch.float32)
        per_doc = (nll * m).sum(1) / m.sum(1)
        for j, c in enumerate(chunk):
            out[live[c]] = float(per_doc[j])
    return out


def mmlu_items(texts: Sequence[str]) -> list[tuple[str, list[str], int]]:
    """Rendered MMLU documents (see :func:`~nag_datasets.demo_data.render_mmlu`) as (prompt, options, answer).

    The prompt is the document up to and including ``"Answer:"``; options are the four option texts.
    """
    items = []
    for text in texts:
        m = _MMLU_ANSWER.search(text)
        if m is None:
            raise ValueError(f"not a rendered MMLU document (no final 'Answer: X' line): {text[-60:]!r}")
        body = text[:m.start()]
        lines = body.split("\n")
        options = [line[3:] for line in lines[-4:]]
        if [line[:3] for line in lines[-4:]] != [f"{x}. " for x in LETTERS]:
            raise ValueError(f"not a rendered MMLU document (no A-D option lines): {body[-80:]!r}")
        items.append((body + "\nAnswer:", options, LETTERS.index(m.group(1))))
    return items


@torch.inference_mode()
def multiple_choice_accuracy(model: nn.Module, tokenizer: Any, items: Sequence[tuple[str, Sequence[str], int]], *,
                             method: str = "letter", max_length: int = 512, batch_size: int = 16
                             ) -> dict[str, Any]:
    """Accuracy on (prompt, options, answer index) items, choosing the option of highest log-likelihood.

    ``method="letter"``: one forward per item, comparing the next-token log-probabilities of " A", " B", ...
    after the prompt (which lists the lettered options). ``method="option"``: the summed log-likelihood of
    " " + option text after the prompt, one sequence per option. Prompts are cut from the left to fit
    ``max_length``. Returns ``{"accuracy", "n", "predictions"}``.
    """
    if method not in ("letter", "option"):
        raise ValueError("method must be 'letter' or 'option'")
    device = next(model.parameters()).device
    pad = _pad_id(tokenizer)
    preds = np.zeros(len(items), np.int64)
    if method == "letter":
        letter_ids = []
        for x in LETTERS[: max(len(o) for _, o, _ in items)]:
            enc = tokenizer(" " + x, add_special_tokens=False)["input_ids"]
            if len(enc) != 1:
                raise ValueError(f"' {x}' is not a single token for this tokenizer; use method='option'")
            letter_ids.append(enc[0])
        prompts = [tokenizer(p, add_special_tokens=False)["input_ids"][-max_length:] for p, _, _ in items]
        for chunk, batch, mask in length_sorted_batches(prompts, batch_size, pad):
            logits = model(input_ids=batch.to(device), attention_mask=mask.to(device), use_cache=False).logits
            last = mask.sum(1) - 1
            scores = logits[torch.arange(len(chunk)), last.to(device)][:, letter_ids]
            for j, c in enumerate(chunk):
                preds[c] = int(scores[j, : len(items[c][1])].argmax())
    else:
        seqs, owners, starts = [], [], []
        for i, (prompt, options, _) in enumerate(items):
            p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            for k, opt in enumerate(options):
                o = tokenizer(" " + opt.strip(), add_special_tokens=False)["input_ids"]
                full = (p + o)[-max_length:]
                seqs.append(full)
                owners.append((i, k))
                starts.append(max(1, len(full) - len(o)))
        ll = np.zeros(len(seqs))
        for chunk, batch, mask in length_sorted_batches(seqs, batch_size, pad):
            logits = model(input_ids=batch.to(device), attention_mask=mask.to(device), use_cache=False).logits
            logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
            tok = logp.gather(-1, batch[:, 1:, None].to(device))[..., 0]
            for j, c in enumerate(chunk):
                n = len(seqs[c])
                ll[c] = float(tok[j, starts[c] - 1:n - 1].sum())
        best: dict[int, tuple[float, int]] = {}
        for (i, k), v in zip(owners, ll):
            if i not in best or v > best[i][0]:
                best[i] = (v, k)
        for i, (_, k) in best.items():
            preds[i] = k
    answers = np.array([a for _, _, a in items])
    return {"accuracy": float((preds == answers).mean()) if len(items) else float("nan"), "n": len(items),
            "predictions": preds}


@torch.inference_mode()
def mean_pooled_embeddings(model: nn.Module, tokenizer: Any, texts: Sequence[str], *, max_length: int = 120,
                           batch_size: int = 16) -> np.ndarray:
    """Mean over valid tokens of the base model's final hidden states (after its final norm): ``(n, hidden)``."""
    ids = token_ids(texts, tokenizer, max_length)
    if any(len(x) == 0 for x in ids):
        raise ValueError("a text has no tokens; filter empty texts first")
    device = next(model.parameters()).device
    out: np.ndarray | None = None
    for chunk, batch, mask in length_sorted_batches(ids, batch_size, _pad_id(tokenizer)):
        hidden = base_model(model)(input_ids=batch.to(device), attention_mask=mask.to(device),
                                   use_cache=False).last_hidden_state.float()
        m = mask.to(device, torch.float32)[..., None]
        pooled = ((hidden * m).sum(1) / m.sum(1)).cpu().numpy()
        if out is None:
            out = np.zeros((len(ids), pooled.shape[1]), np.float32)
        out[chunk] = pooled
    return out if out is not None else np.zeros((0, 0), np.float32)


@torch.inference_mode()
def signatures_and_embeddings(model: nn.Module, tokenizer: Any, texts: Sequence[str], *,
                              neuron_types: Sequence[str] = ("fwd_up",), top_k: int = 20, max_length: int = 120,
                              batch_size: int = 16) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """NAG signatures per neuron type ``{type: (n, L, top_k)}`` (all layers) and :func:`mean_pooled_embeddings`
    ``(n, hidden)`` from ONE forward pass per batch: the last layer's output is captured before the recorder stops
    the pass, and the model's final norm is applied to it here, exactly as the base model would."""
    ids = token_ids(texts, tokenizer, max_length)
    if any(len(x) == 0 for x in ids):
        raise ValueError("a text has no tokens; filter empty texts first")
    device = next(model.parameters()).device
    base = base_model(model)
    sigs: dict[str, np.ndarray] = {}
    emb: np.ndarray | None = None
    captured: list[torch.Tensor] = []
    with ImpactRecorder(model, list(neuron_types)) as rec:
        last = base.layers[rec.layers[-1]]
        handle = last.register_forward_hook(
            lambda m, i, o: captured.append(o[0] if isinstance(o, tuple) else o), prepend=True)
        try:
            for chunk, batch, mask in length_sorted_batches(ids, batch_size, _pad_id(tokenizer)):
                captured.clear()
                impacts = rec.impacts(batch.to(device), mask.to(device))
                for t, imp in impacts.items():
                    top = top_k_indices(imp, top_k).cpu().numpy()
                    if t not in sigs:
                        sigs[t] = np.zeros((len(ids), *top.shape[1:]), np.int32)
                    sigs[t][chunk] = top
                hidden = base.norm(captured[-1]).float()
                m = mask.to(device, torch.float32)[..., None]
                pooled = ((hidden * m).sum(1) / m.sum(1)).cpu().numpy()
                if emb is None:
                    emb = np.zeros((len(ids), pooled.shape[1]), np.float32)
                emb[chunk] = pooled
        finally:
            handle.remove()
    if emb is None:
        raise ValueError("no texts")
    return sigs, emb


def mean_impacts(model: nn.Module, tokenizer: Any, texts: Sequence[str], *, neuron_type: str = "fwd_up",
                 max_length: int = 120, batch_size: int = 16, layers: Sequence[int] | None = None) -> np.ndarray:
    """Impact of every neuron averaged over the documents (each document weighs the same): ``(L, N)`` float64."""
    ids = [x for x in token_ids(texts, tokenizer, max_length) if x]
    if not ids:
        raise ValueError("no text has a token")
    total: np.ndarray | None = None
    with ImpactRecorder(model, [neuron_type], layers) as rec:
        for _, batch, mask in length_sorted_batches(ids, batch_size, _pad_id(tokenizer)):
            dev = next(model.parameters()).device
            imp = rec.impacts(batch.to(dev), mask.to(dev))[neuron_type].double().sum(0).cpu().numpy()
            total = imp if total is None else total + imp
    assert total is not None
    return total / len(ids)
