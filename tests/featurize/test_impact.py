"""Impact and top-K on the real bundled model: the definition, and independence from batch composition."""

from __future__ import annotations

import pytest
import torch

from nag_datasets.featurize.impact import ImpactRecorder, near_tie_report, top_k_indices

DOCS = [
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "def add(a, b):\n    return a + b\n",
    "The ship sailed at dawn; by noon the harbour was a grey line behind them.",
    "Q: 12 apples cost $6. How much do 30 apples cost? A: Each apple costs $0.50, so 30 cost $15.",
    "Ohm's law states V = IR.",
    "Stock markets rallied on Tuesday after the central bank held interest rates steady, "
    "citing slowing inflation and a resilient labour market; analysts expect cuts next year. " * 3,
    "x",
    "Mitochondria are the powerhouse of the cell, producing ATP through oxidative phosphorylation.",
] * 2


def _encode(tok, texts, max_length=120):
    return tok(texts, add_special_tokens=False, truncation=True, max_length=max_length, padding=True,
               padding_side="right", return_tensors="pt")


@pytest.mark.slow
def test_signatures_follow_the_definition(bundled):
    """Top-K of impacts recomputed from the captured up_proj input and the weight matrix (float64)."""
    model, tok = bundled
    enc = _encode(tok, DOCS[:4])
    captured: dict[int, torch.Tensor] = {}
    layers = model.model.layers
    handles = [layers[i].mlp.up_proj.register_forward_pre_hook(
        lambda m, args, i=i: captured.__setitem__(i, args[0].detach().clone())) for i in range(len(layers))]
    try:
        with ImpactRecorder(model, ["fwd_up"]) as rec:
            sig = rec.signatures(enc["input_ids"], enc["attention_mask"], 20)["fwd_up"]
    finally:
        for h in handles:
            h.remove()
    mask = enc["attention_mask"].double()
    ref = []
    for i in range(len(layers)):
        w = layers[i].mlp.up_proj.weight.double()  # (out, in): row k is neuron k
        contrib = (captured[i].double() @ w.T).abs()
        ref.append((contrib * mask[..., None]).sum(1) / mask.sum(1, keepdim=True))
    impacts = torch.stack(ref, dim=1)
    expected = top_k_indices(impacts, 20)
    report = near_tie_report(sig, expected, impacts.float())
    assert report["non_near_ties"] == 0, report
    assert report["rows_differing"] <= 2, report
    assert sig.shape == (4, 30, 20)


@pytest.mark.slow
def test_batch_size_does_not_change_signatures(bundled):
    """Documents of very different lengths at batch sizes 1 and 16: equal up to counted near-ties."""
    model, tok = bundled
    with ImpactRecorder(model, ["fwd_up", "att_o"]) as rec:
        batched = _encode(tok, DOCS)
        lengths = batched["attention_mask"].sum(1)
        assert int(lengths.max()) >= 8 * int(lengths.min())
        big = rec.impacts(batched["input_ids"], batched["attention_mask"])
        singles = [rec.impacts(**{k: v for k, v in _encode(tok, [d]).items() if k != "token_type_ids"})
                   for d in DOCS]
    for t in ("fwd_up", "att_o"):
        one = torch.cat([s[t] for s in singles])
        # Impacts move only by float32 matmul-shape noise (~1e-5 of a layer's largest impact).
        assert float(((one - big[t]).abs() / one.amax(-1, keepdim=True)).max()) < 1e-4
        report = near_tie_report(top_k_indices(one, 20), top_k_indices(big[t], 20), one)
        assert report["non_near_ties"] == 0, (t, report)
        # Measured: no flips at all between batch 1 and 16 on these documents; allow a handful of near-ties.
        assert report["rows_differing"] <= 3, (t, report)


@pytest.mark.fast
def test_near_tie_report_counts():
    impacts = torch.tensor([[3.0, 2.0, 1.0, 1.0 + 1e-7, 0.5]])
    a = torch.tensor([[0, 1, 3]])
    b = torch.tensor([[0, 1, 2]])
    assert near_tie_report(a, b, impacts) == {"rows_differing": 1, "positions_differing": 1,
                                              "non_near_ties": 0, "max_gap_rel": pytest.approx(1e-7, rel=0.5)}
    c = torch.tensor([[0, 4, 2]])
    assert near_tie_report(a, c, impacts)["non_near_ties"] == 1


@pytest.mark.fast
def test_core_imports_without_datasets_pyarrow_or_numba():
    import subprocess
    import sys

    code = ("import sys, nag_datasets.featurize.impact, nag_datasets.featurize.sites, nag_datasets.signatures.spec; "
            "print(sorted(m for m in ('datasets', 'pyarrow', 'numba') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
