"""Determinism and row accounting on the real model: byte-identical signatures across runs, identical across batch
sizes, batch compositions and process counts except at near-ties (NAG_METHOD.md, "Numerical reality"), and every
row of hostile input accounted for.

Model work is kept tiny: short texts, ``max_length=32`` (recorded in the spec).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch
from datasets import Dataset
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nag_datasets.featurize.featurizer import InvalidTextError, NAGFeaturizer
from nag_datasets.featurize.impact import near_tie_report, top_k_indices
from nag_datasets.featurize.report import NULL_STATUSES, STATUSES
from nag_datasets.scoring.target_profile import NAGProfile
from nag_datasets.selection.budgeted import select_top_fraction
from nag_datasets.signatures.columns import get_spec

MAX_LENGTH = 32
TEXTS = [
    "Water boils at 100 degrees Celsius at sea level.",
    "def add(a, b):\n    return a + b",
    "In the beginning God created the heaven and the earth.",
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May.",
    "Which of the following is a prime number? A. 4 B. 6 C. 7 D. 9",
    "short",
    "Le café est très chaud ce matin, dit-elle en souriant.",
    "東京は日本の首都です。人口は約千四百万人です。",
]
PROPERTY = settings(max_examples=15, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """One intra-op thread: on a shared two-core machine, two spinning threads are many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def feat(bundled):
    """One featurizer on the session's model (batch size is changed per call), max_length=32, lenient policy."""
    model, tok = bundled
    return NAGFeaturizer(model, tokenizer=tok, max_length=MAX_LENGTH, on_invalid="null")


@pytest.fixture(scope="module")
def reference(feat):
    """Each text alone (batch size 1): its token ids, signature and fp32 impacts."""
    state = feat._ensure_loaded()
    cut = [feat._tokenize([t], state["tokenizer"])[0] for t in TEXTS]
    ids = [x for x, _ in cut]
    impacts = torch.stack([_impacts(state, x) for x in ids])
    sigs = top_k_indices(impacts, feat.top_k)
    status = ["truncated" if truncated else "ok" for _, truncated in cut]
    assert "truncated" in status and "ok" in status
    return {"ids": ids, "impacts": impacts, "sigs": sigs, "status": status}


def _impacts(state, ids):
    t = torch.tensor([ids], dtype=torch.long)
    return state["recorder"].impacts(t, torch.ones_like(t))["fwd_up"][0]


def _sig_tensor(rows) -> torch.Tensor:
    return torch.as_tensor(np.stack([np.asarray(r, dtype=np.int64) for r in rows]))


def _call(feat, texts, batch_size):
    feat.batch_size = batch_size
    try:
        return feat({"text": list(texts)})
    finally:
        feat.batch_size = 16


# -- determinism ---------------------------------------------------------------------------------------------------


def _signature_buffers(ds) -> list[bytes]:
    column = ds.data.table.column("nag_fwd_up").combine_chunks()
    inner = column.flatten().flatten()
    return [b.to_pybytes() if b is not None else b"" for arr in (column, inner) for b in arr.buffers()[:2]]


@pytest.mark.slow
def test_same_inputs_give_byte_identical_signature_columns(bundled):
    model, tok = bundled
    ds = Dataset.from_dict({"text": TEXTS + ["", "   "]})
    runs = []
    for _ in range(2):
        featurizer = NAGFeaturizer(model, tokenizer=tok, max_length=MAX_LENGTH, batch_size=4)
        runs.append(featurizer.apply(ds, load_from_cache_file=False))
    a, b = runs
    assert a.data.table.column("nag_fwd_up").equals(b.data.table.column("nag_fwd_up"))
    assert _signature_buffers(a) == _signature_buffers(b)
    assert a["nag_status"][:] == b["nag_status"][:] and a["nag_tokens"][:] == b["nag_tokens"][:]
    assert get_spec(a, "nag_fwd_up") == get_spec(b, "nag_fwd_up")
    assert get_spec(a, "nag_fwd_up").max_length == MAX_LENGTH
    assert isinstance(a.data.table.column("nag_fwd_up").type, pa.FixedSizeListType)


@pytest.mark.slow
def test_batch_sizes_and_process_counts_agree_up_to_near_ties(feat, reference):
    # Batch size 1 through the featurizer is exactly the reference computation.
    assert torch.equal(_sig_tensor(_call(feat, TEXTS, 1)["nag_fwd_up"]), reference["sigs"])
    reports = {}
    for batch_size in (3, 8):
        sigs = _sig_tensor(_call(feat, TEXTS, batch_size)["nag_fwd_up"])
        reports[f"batch {batch_size}"] = near_tie_report(reference["sigs"], sigs, reference["impacts"])
    # Two worker processes (each loads its own model), map batches of 3.
    ds = Dataset.from_dict({"text": TEXTS})
    multi = NAGFeaturizer(max_length=MAX_LENGTH, batch_size=3).apply(ds, num_proc=2, batch_size=3,
                                                                    load_from_cache_file=False)
    assert get_spec(multi, "nag_fwd_up").fingerprint == feat.spec().fingerprint
    reports["num_proc 2"] = near_tie_report(reference["sigs"], _sig_tensor(multi["nag_fwd_up"][:]),
                                            reference["impacts"])
    total_positions = reference["sigs"].numel()
    for name, report in reports.items():
        assert report["non_near_ties"] == 0, (name, report)  # every difference is a near-tie...
        assert report["positions_differing"] <= 0.01 * total_positions, (name, report)  # ...and they are rare


@pytest.mark.slow
@PROPERTY
@given(data=st.data())
def test_signatures_independent_of_batch_composition(feat, reference, data):
    """A random multiset of the texts, in random order, in random batch sizes: each row matches its text alone."""
    picks = data.draw(st.lists(st.integers(0, len(TEXTS) - 1), min_size=1, max_size=8), label="rows")
    batch_size = data.draw(st.integers(1, 8), label="batch_size")
    out = _call(feat, [TEXTS[i] for i in picks], batch_size)
    assert out["nag_status"] == [reference["status"][i] for i in picks]
    assert out["nag_tokens"] == [len(reference["ids"][i]) for i in picks]
    got = _sig_tensor(out["nag_fwd_up"])
    report = near_tie_report(reference["sigs"][picks], got, reference["impacts"][picks])
    assert report["non_near_ties"] == 0, report
    assert report["rows_differing"] <= 1, report


# -- row accounting --------------------------------------------------------------------------------------------------


def _check_accounting(texts, out, spec) -> None:
    """Invariants every featurizer output must satisfy, whatever the input."""
    n = len(texts)
    sigs, status, tokens = out["nag_fwd_up"], out["nag_status"], out["nag_tokens"]
    assert len(sigs) == len(status) == len(tokens) == n
    for text, sig, s, t in zip(texts, sigs, status, tokens):
        assert s in STATUSES
        if text is None:
            assert s == "none"
        elif not isinstance(text, str):
            assert s == "not_string"
        elif text == "":
            assert s == "empty"
        elif text.isspace():
            assert s == "whitespace"
        else:
            assert s in ("ok", "truncated", "zero_tokens")
        if s in NULL_STATUSES:
            assert sig is None and t == 0
        else:
            arr = np.asarray(sig)
            assert arr.shape == (spec.num_layers, spec.top_k)
            assert arr.max() < spec.neurons_per_layer
            assert all(len(set(row)) == spec.top_k for row in arr.tolist())  # K distinct neurons per layer
            assert 1 <= t <= MAX_LENGTH
            assert t == MAX_LENGTH or s == "ok"  # truncated rows keep exactly max_length tokens


hostile_text = st.one_of(
    st.text(alphabet=st.characters(codec=None), max_size=60),  # any code point, lone surrogates included
    st.text(alphabet=st.sampled_from(["\x00", "\x01", "\x1b", "\u202e", "\u200d", "😀", "\u0301", " ", "\n", "a"]),
            max_size=60),
    st.sampled_from(["", " ", "\t\n", "\u3000", "x" * 5000, "\ud800", "a\udfffb"]),
    st.none(),
    st.integers(),
    st.binary(max_size=8),
    st.floats(allow_nan=True),
)


@pytest.mark.slow
@PROPERTY
@given(texts=st.lists(hostile_text, min_size=1, max_size=5), batch_size=st.integers(1, 5))
def test_hostile_batches_never_crash_and_every_row_is_accounted(feat, texts, batch_size):
    out = _call(feat, texts, batch_size)
    _check_accounting(texts, out, feat.spec())


@pytest.mark.slow
def test_pipeline_accounts_for_every_row(bundled):
    """Featurize (report by reason), profile (skipped), score (null rows) and select (rows and tokens excluded)."""
    model, tok = bundled
    texts = ["Water boils at 100 degrees.", "", "   \n\t", None, "word " * 400, "\x00\x01 control \x7f",
             "emoji 😀👩‍👩‍👧 and \u202e RTL", "\u3000\u2028"]
    ds = Dataset.from_dict({"text": texts, "num_tokens": [5, 0, 0, 0, 400, 4, 9, 0]})
    featurizer = NAGFeaturizer(model, tokenizer=tok, max_length=MAX_LENGTH, on_invalid="null")
    out, report = featurizer.apply(ds, return_report=True, load_from_cache_file=False)
    assert out["nag_status"][:] == ["ok", "empty", "whitespace", "none", "truncated", "ok", "ok", "whitespace"]
    assert (report.rows, report.featurized_rows, report.truncated_rows, report.null_rows) == (8, 4, 1, 4)
    assert report.null_by_reason == {"empty": 1, "whitespace": 2, "none": 1}
    assert report.featurized_rows + report.null_rows == report.rows
    assert report.tokens == sum(out["nag_tokens"][:])
    _check_accounting(texts, {k: out[k][:] for k in ("nag_fwd_up", "nag_status", "nag_tokens")}, featurizer.spec())

    profile = NAGProfile.from_dataset(out)
    assert (profile.num_targets, profile.skipped_null) == (4, 4)
    scores, score_report = profile.score(out, return_report=True)
    assert score_report.null_rows == 4 and np.isnan(scores).tolist() == [s is None for s in out["nag_fwd_up"][:]]
    _, selection = select_top_fraction(out, 0.5, token_column="num_tokens", profile=profile, return_report=True)
    assert selection.null_rows_skipped == 4 and selection.pool_documents == 4
    assert selection.null_tokens_skipped == 0 and selection.pool_tokens == 5 + 400 + 4 + 9

    # The default policy: None and non-strings are errors; empty and whitespace are null rows.
    strict = NAGFeaturizer(model, tokenizer=tok, max_length=MAX_LENGTH)
    assert strict({"text": ["", " ", "fine"]})["nag_status"] == ["empty", "whitespace", "ok"]
    for bad in (None, 5, b"bytes", 2.5, ["list"]):
        with pytest.raises(InvalidTextError, match="on_invalid='null'"):
            strict({"text": ["fine", bad]})


@pytest.mark.slow
def test_zero_tokens_and_lone_surrogates(feat, monkeypatch):
    """Lone surrogates cannot be stored in a datasets column: they go through the featurizer's direct call."""
    out = _call(feat, ["a\ud800b", "\udfff", "\ud83d\ude00 paired"], 2)
    assert out["nag_status"] == ["ok", "ok", "ok"]
    state = feat._ensure_loaded()
    assert feat._tokenize(["\ud83d\ude00 paired"], state["tokenizer"]) == feat._tokenize(["😀 paired"],
                                                                                        state["tokenizer"])
    # No text of this byte-level tokenizer has zero tokens; another tokenizer's may (e.g. one that drops
    # unknown characters): such rows are null, not an arbitrary top-K.
    from nag_datasets.featurize import textcut

    real = textcut.first_token_ids

    def drops_zwsp(text, tokenizer, max_length, add_special_tokens=False, char_budget=None):
        if set(text) == {"\u200b"}:
            return [], False
        return real(text, tokenizer, max_length, add_special_tokens, char_budget)

    monkeypatch.setattr(textcut, "first_token_ids", drops_zwsp)
    texts = ["\u200b\u200b", "real text", "\u200b"]
    out = _call(feat, texts, 3)
    assert out["nag_status"] == ["zero_tokens", "ok", "zero_tokens"]
    assert out["nag_fwd_up"][0] is None and out["nag_fwd_up"][2] is None
    assert out["nag_tokens"][0] == out["nag_tokens"][2] == 0 < out["nag_tokens"][1]
    ds = Dataset.from_dict({"text": texts})
    _, report = feat.apply(ds, return_report=True, load_from_cache_file=False)
    assert report.null_by_reason == {"zero_tokens": 2} and report.featurized_rows == 1


@pytest.mark.fast
def test_near_tie_report_tells_near_ties_from_real_differences():
    """The yardstick used above: a swap of two neurons is a near-tie only if their impacts are within 1e-4 of the
    K-th impact."""
    impacts = torch.tensor([[[5.0, 4.0, 3.0, 2.0000001, 2.0, 0.5]]])  # (docs, layers, neurons), K = 4
    sig = top_k_indices(impacts, 4)
    assert sig.tolist() == [[[0, 1, 2, 3]]]
    near = torch.tensor([[[0, 1, 2, 4]]])  # 3 and 4 differ by 1e-7: a near-tie
    far = torch.tensor([[[0, 1, 2, 5]]])  # 3 and 5 differ by 1.5: a real difference
    assert near_tie_report(sig, sig, impacts) == {"rows_differing": 0, "positions_differing": 0, "non_near_ties": 0,
                                                  "max_gap_rel": 0.0}
    report = near_tie_report(sig, near, impacts)
    assert (report["rows_differing"], report["positions_differing"], report["non_near_ties"]) == (1, 1, 0)
    report = near_tie_report(sig, far, impacts)
    assert (report["positions_differing"], report["non_near_ties"]) == (1, 1)
