"""Neuron impacts and top-K signatures from token batches: the featurizer core (torch and transformers only).

Impact of neuron k for a document = mean over its valid tokens of |projection output_k - bias_k|, in float32,
reduced inside the forward hook so no (batch, tokens, neurons) activation outlives its layer. The forward pass
runs the base model (never the LM head) and stops after the last requested layer.

>>> import torch
>>> from transformers import LlamaConfig, LlamaForCausalLM
>>> model = LlamaForCausalLM(LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=3,
...                                      num_attention_heads=4, num_key_value_heads=2, vocab_size=100))
>>> rec = ImpactRecorder(model, ["fwd_up"], layers=[0, 1])
>>> ids = torch.randint(0, 100, (2, 7)); mask = torch.ones(2, 7, dtype=torch.long)
>>> rec.signatures(ids, mask, top_k=5)["fwd_up"].shape
torch.Size([2, 2, 5])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from typing_extensions import Self

from ..errors import InvalidArgumentError, NAGError
from .sites import NeuronSite, UnsupportedArchitectureError, decoder_layers, resolve_sites


class HookError(NAGError, RuntimeError):
    """The hooks did not see what the neuron sites promise: an output of another shape, or sites that never ran."""


class _StopForward(Exception):
    """Raised by a hook after the last needed layer to end the forward pass early; :meth:`ImpactRecorder.impacts`
    catches it. Control flow that never leaves this module, so it is not a :class:`NAGError`."""


def top_k_indices(impacts: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` largest values along the last axis, by value descending, exact ties by lower index."""
    if k > impacts.shape[-1]:
        raise InvalidArgumentError(f"top_k={k} exceeds the {impacts.shape[-1]} neurons per layer")
    order = torch.sort(impacts, dim=-1, descending=True, stable=True).indices
    return order[..., :k]


def base_model(model: nn.Module) -> nn.Module:
    """The transformer body without the LM head (``model.base_model`` for transformers causal LMs)."""
    body = getattr(model, "base_model", None)
    return body if isinstance(body, nn.Module) and body is not model else model


class ImpactRecorder:
    """Hooks a model's neuron sites and returns per-document impacts or signatures for token batches.

    Thread-unsafe by design (one forward at a time); hooks stay registered until :meth:`close`. ``stop_after`` moves
    the early stop to a later decoder layer (one whose output another hook reads, e.g. an embedding's).
    """

    def __init__(self, model: nn.Module, neuron_types: Sequence[str] = ("fwd_up",),
                 layers: Sequence[int] | None = None, *, stop_after: int | None = None) -> None:
        self.model = model
        self.neuron_types = tuple(neuron_types)
        self.sites: list[NeuronSite] = resolve_sites(model, self.neuron_types, layers)
        self.layers = tuple(sorted({s.layer for s in self.sites}))
        self._mask: torch.Tensor | None = None
        self._lengths: torch.Tensor | None = None
        self._results: dict[int, torch.Tensor] = {}
        self._handles = [s.module.register_forward_hook(self._make_hook(i)) for i, s in enumerate(self.sites)]
        _, layer_list = decoder_layers(model)
        # The forward pass ends after the last layer anyone needs: the signatures', or a later one (an embedding's).
        self.stop_layer = max(max(self.layers), -1 if stop_after is None else int(stop_after))
        self._handles.append(layer_list[self.stop_layer].register_forward_hook(self._stop))

    def neurons_per_layer(self, neuron_type: str) -> int:
        counts = {s.num_neurons for s in self.sites if s.neuron_type == neuron_type}
        if len(counts) != 1:
            raise UnsupportedArchitectureError(f"{neuron_type} has differing neuron counts across layers: "
                                               f"{sorted(counts)}")
        return counts.pop()

    def _make_hook(self, i: int) -> Any:
        site = self.sites[i]

        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            mask = self._mask
            if mask is None or self._lengths is None:
                return  # a forward outside `impacts` (the user's own use of the model): stay out of the way
            out = output[0] if isinstance(output, tuple) else output
            contrib = site.neuron_output(out).abs()  # never in place: the model reads this output
            if contrib.shape[:-1] != mask.shape:
                # Some models run the MLP on flattened tokens (OPT: fc1/fc2 see (batch * tokens, d)).
                if contrib[..., 0].numel() != mask.numel():
                    raise HookError(f"{site.path} output has shape {tuple(out.shape)}, not (batch, tokens, "
                                    f"neurons) for a batch of shape {tuple(mask.shape)}")
                contrib = contrib.reshape(*mask.shape, contrib.shape[-1])
            # (B,1,T) @ (B,T,N): the mask-first product is ~5x cheaper than einsum("btn,bt->bn") on CPU.
            weights = mask.to(contrib.device, torch.float32).unsqueeze(1)
            summed = torch.bmm(weights, contrib).squeeze(1)
            self._results[i] = summed / self._lengths.to(contrib.device, torch.float32)[:, None]

        return hook

    def _stop(self, module: nn.Module, inputs: Any, output: Any) -> None:
        if self._mask is not None:
            raise _StopForward

    def close(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @torch.inference_mode()
    def impacts(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per neuron type, a float32 tensor ``(batch, layers, neurons)`` of impacts.

        Padding must be on the right (positions of real tokens then never depend on the batch). Rows with no
        valid token are refused: their impact is undefined.
        """
        if attention_mask.dim() != 2 or attention_mask.shape != input_ids.shape:
            raise InvalidArgumentError("input_ids and attention_mask must both be (batch, tokens)")
        lengths = attention_mask.sum(dim=1)
        if bool((lengths == 0).any()):
            raise InvalidArgumentError("a row has no valid token; its impact is undefined (filter such rows out first)")
        if attention_mask.shape[1] > 1 and bool((attention_mask[:, 1:] > attention_mask[:, :-1]).any()):
            raise InvalidArgumentError("attention_mask must be right-padded (ones then zeros in every row)")
        self._mask, self._lengths, self._results = attention_mask, lengths, {}
        try:
            base_model(self.model)(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        except _StopForward:
            pass
        finally:
            self._mask = self._lengths = None
        results, self._results = self._results, {}
        if len(results) != len(self.sites):
            raise HookError(f"only {len(results)} of {len(self.sites)} neuron sites ran in the forward pass")
        out: dict[str, torch.Tensor] = {}
        for t in self.neuron_types:
            idx = [i for i, s in enumerate(self.sites) if s.neuron_type == t]
            out[t] = torch.stack([results[i] for i in idx], dim=1)
        return out

    def signatures(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, top_k: int) -> dict[str, torch.Tensor]:
        """Per neuron type, ``(batch, layers, top_k)`` neuron indices sorted by impact descending."""
        return {t: top_k_indices(v, top_k) for t, v in self.impacts(input_ids, attention_mask).items()}


def near_tie_report(sig_a: torch.Tensor, sig_b: torch.Tensor, impacts: torch.Tensor,
                    rel_tol: float = 1e-4) -> dict[str, float]:
    """Count where two signatures of the same documents differ, and whether every difference is a near-tie.

    A difference at position j of a row is a near-tie when the impacts of the two neurons found there differ by
    less than ``rel_tol`` times the row's K-th impact (impacts recomputed in fp32), as NAG_METHOD.md defines it.
    ``sig_*`` are (..., K) indices, ``impacts`` the matching (..., N) impacts.
    """
    a, b = sig_a.long(), sig_b.long()
    if a.shape != b.shape:
        raise InvalidArgumentError(f"signature shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    diff = a != b
    ia, ib = impacts.gather(-1, a), impacts.gather(-1, b)
    kth = torch.minimum(ia[..., -1:], ib[..., -1:]).abs().clamp_min(torch.finfo(torch.float32).tiny)
    gap = ((ia - ib).abs() / kth)[diff]
    return {
        "rows_differing": int(diff.any(-1).sum()),
        "positions_differing": int(diff.sum()),
        "non_near_ties": int((gap >= rel_tol).sum()),
        "max_gap_rel": float(gap.max()) if gap.numel() else 0.0,
    }
