"""The embedding from the forward pass that computes the signatures: one decoder layer's output, passed through the
model's final norm, averaged over each document's valid tokens (float32), for the ``nag_embedding`` column.

A forward hook on the chosen layer does the work while the pass runs (prepended, so it runs before the recorder's
early stop on the same layer); nothing of the layer's ``(batch, tokens, hidden)`` output outlives the hook.

>>> import torch
>>> from transformers import LlamaConfig, LlamaForCausalLM
>>> model = LlamaForCausalLM(LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=3,
...                                      num_attention_heads=4, num_key_value_heads=2, vocab_size=100))
>>> resolve_embedding_layer("mid", 30), resolve_embedding_layer("last", 30), resolve_embedding_layer(-2, 30)
(15, 29, 28)
>>> pooler = LayerPooler(model, layer=2)
>>> ids = torch.randint(0, 100, (2, 5)); mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
>>> with pooler.recording(mask):
...     _ = model.model(input_ids=ids, attention_mask=mask)
>>> pooler.result().shape
torch.Size([2, 64])
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from ..errors import InvalidArgumentError
from .impact import HookError
from .sites import decoder_layers, final_norm

__all__ = ["EMBEDDING_CHOICES", "LayerPooler", "check_embedding_choice", "resolve_embedding_layer"]

#: The named layers an embedding can come from (besides an index).
EMBEDDING_CHOICES = ("last", "mid")


def check_embedding_choice(embedding: Any) -> str | int | None:
    """``embedding`` as given when it is None, ``"last"``, ``"mid"`` or an integer index (a digit string too);
    anything else is refused."""
    if embedding is None or embedding in EMBEDDING_CHOICES:
        return embedding
    if isinstance(embedding, str) and embedding.lstrip("-").isdigit():
        return int(embedding)
    if isinstance(embedding, int) and not isinstance(embedding, bool):
        return int(embedding)
    raise InvalidArgumentError(f"embedding must be None, 'last', 'mid' or a layer index, got {embedding!r}")


def resolve_embedding_layer(embedding: str | int, num_layers: int) -> int:
    """The decoder layer index of an embedding choice: ``"last"`` = the final layer, ``"mid"`` = ``num_layers // 2``,
    an int as given (negative counts from the end)."""
    if embedding == "last":
        return num_layers - 1
    if embedding == "mid":
        return num_layers // 2
    i = int(embedding)
    j = i + num_layers if i < 0 else i
    if not 0 <= j < num_layers:
        raise InvalidArgumentError(f"embedding layer {i} out of range for a model with {num_layers} layers")
    return j


class LayerPooler:
    """Hooks decoder layer ``layer`` of ``model``; inside :meth:`recording` each forward pass leaves the masked mean of
    ``final_norm(layer output)`` over valid tokens, float32 ``(batch, hidden)``, in :meth:`result`."""

    def __init__(self, model: nn.Module, layer: int) -> None:
        _, layers = decoder_layers(model)
        self.layer = resolve_embedding_layer(layer, len(layers))
        self.norm = final_norm(model)
        self._mask: torch.Tensor | None = None
        self._result: torch.Tensor | None = None
        self._handle = layers[self.layer].register_forward_hook(self._hook, prepend=True)

    def _hook(self, module: nn.Module, inputs: Any, output: Any) -> None:
        mask = self._mask
        if mask is None:
            return  # a forward outside `recording`: stay out of the way
        hidden = output[0] if isinstance(output, tuple) else output
        normed = self.norm(hidden).float()
        if normed.shape[:2] != mask.shape:
            raise HookError(f"decoder layer {self.layer} output has shape {tuple(hidden.shape)}, not (batch, tokens, "
                            f"hidden) for a batch of shape {tuple(mask.shape)}")
        weights = mask.to(normed.device, torch.float32)
        # (B,1,T) @ (B,T,H): the masked sum over valid tokens, then the mean.
        summed = torch.bmm(weights.unsqueeze(1), normed).squeeze(1)
        self._result = summed / weights.sum(dim=1, keepdim=True)

    @contextlib.contextmanager
    def recording(self, attention_mask: torch.Tensor) -> Iterator[None]:
        """Pool during the forward passes run inside the block (right-padded ``attention_mask``)."""
        self._mask, self._result = attention_mask, None
        try:
            yield
        finally:
            self._mask = None

    def result(self) -> torch.Tensor:
        """The last pass's pooled vectors; refused when the hooked layer did not run."""
        if self._result is None:
            raise HookError(f"decoder layer {self.layer} did not run in the forward pass: no embedding")
        out, self._result = self._result, None
        return out

    def close(self) -> None:
        self._handle.remove()
