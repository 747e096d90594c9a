"""NAGFeaturizer with `datasets`: typed columns, spec travel, caching, bad input, report."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from datasets import Dataset, load_from_disk

from nag_datasets.featurize.featurizer import InvalidTextError, NAGFeaturizer
from nag_datasets.featurize.report import FeaturizeReport
from nag_datasets.signatures.columns import get_spec, spec_from_feature

TEXTS = ["Water boils at 100 degrees Celsius at sea level.", "", "   \n\t", "def f(x):\n    return x * 2",
         "The quick brown fox jumps over the lazy dog. " * 40, "a"]


@pytest.fixture(scope="module")
def disk_ds(tmp_path_factory):
    path = tmp_path_factory.mktemp("pool") / "ds"
    Dataset.from_dict({"text": TEXTS, "id": list(range(len(TEXTS)))}).save_to_disk(str(path))
    return load_from_disk(str(path))


@pytest.mark.slow
def test_columns_types_and_statuses(featurizer, disk_ds):
    out, report = featurizer.apply(disk_ds, return_report=True)
    assert out.column_names == ["text", "id", "nag_fwd_up", "nag_tokens", "nag_status", "nag_spec"]
    assert str(out.data.column("nag_fwd_up").type) == "fixed_size_list<item: fixed_size_list<item: uint16>[20]>[30]"
    assert list(out["nag_status"]) == ["ok", "empty", "whitespace", "ok", "truncated", "ok"]
    tokens = list(out["nag_tokens"])
    assert tokens[1] == tokens[2] == 0 and tokens[4] == 32 and 0 < tokens[0] < 32
    sigs = out["nag_fwd_up"]
    assert sigs[1] is None and sigs[2] is None
    row = np.asarray(sigs[0])
    assert row.shape == (30, 20) and all(len(set(r)) == 20 for r in row.tolist())
    assert report == FeaturizeReport(rows=6, featurized_rows=4, truncated_rows=1, null_rows=2,
                                     null_by_reason={"empty": 1, "whitespace": 1}, tokens=sum(tokens))
    spec = get_spec(out, "nag_fwd_up")
    assert (spec.top_k, spec.max_length, spec.neurons_per_layer, spec.layers) == (20, 32, 1536, tuple(range(30)))
    assert NAGFeaturizer().max_length == 120  # the default; the shared test featurizer is shorter (token budget)
    assert spec.model_fingerprint.startswith("gguf-sha256:") and spec.dtype == "float32"


@pytest.mark.slow
def test_signature_is_same_through_map_as_direct(featurizer, bundled):
    model, tok = bundled
    from nag_datasets.featurize.impact import ImpactRecorder

    text = TEXTS[0]
    enc = tok([text], add_special_tokens=False, return_tensors="pt", truncation=True, max_length=featurizer.max_length)
    with ImpactRecorder(model, ["fwd_up"]) as rec:
        direct = rec.signatures(enc["input_ids"], enc["attention_mask"], 20)["fwd_up"][0].numpy()
    out = featurizer({"text": [text]})
    assert np.array_equal(out["nag_fwd_up"][0], direct)


@pytest.mark.slow
def test_spec_travels_through_filter_select_save_and_parquet(featurizer, disk_ds, tmp_path):
    import datasets

    out = featurizer.apply(disk_ds)
    spec = get_spec(out, "nag_fwd_up")
    moved = out.filter(lambda r: r["nag_status"] == "ok").select([1, 0])
    moved.save_to_disk(str(tmp_path / "a"))
    assert get_spec(load_from_disk(str(tmp_path / "a")), "nag_fwd_up") == spec
    out.to_parquet(str(tmp_path / "b.parquet"))
    pq = datasets.load_dataset("parquet", data_files=str(tmp_path / "b.parquet"), split="train")
    assert spec_from_feature(pq.features["nag_fwd_up"]) == spec


@pytest.mark.slow
def test_map_cache_hit_and_misses(disk_ds):
    base = NAGFeaturizer(max_length=32)
    first = base.apply(disk_ds)
    again = NAGFeaturizer(max_length=32).apply(disk_ds)
    assert again._fingerprint == first._fingerprint
    assert again.cache_files == first.cache_files
    fingerprints = {first._fingerprint}
    for variant in (NAGFeaturizer(top_k=10, max_length=32), NAGFeaturizer(max_length=16),
                    NAGFeaturizer(neuron_types=("att_o",), max_length=32), NAGFeaturizer(layers=[0, 29], max_length=32)):
        fingerprints.add(variant.apply(disk_ds)._fingerprint)
    assert len(fingerprints) == 5


@pytest.mark.fast
def test_fingerprint_changes_with_model(tmp_path):
    from datasets.fingerprint import Hasher

    a, b = NAGFeaturizer(), NAGFeaturizer(model="some-org/other-model")
    assert Hasher.hash(a) != Hasher.hash(b)
    assert Hasher.hash(a) == Hasher.hash(NAGFeaturizer())


@pytest.mark.slow
def test_pickle_carries_configuration_only(featurizer, bundled):
    featurizer.spec()  # loads the model in this process
    clone = pickle.loads(pickle.dumps(featurizer))
    assert clone._loaded is None and clone.top_k == featurizer.top_k
    model, tok = bundled
    in_memory = NAGFeaturizer(model, tokenizer=tok)
    orphan = pickle.loads(pickle.dumps(in_memory))
    with pytest.raises(RuntimeError, match="num_proc > 1"):
        orphan({"text": ["hello"]})
    assert in_memory.spec().model_fingerprint == featurizer.spec().model_fingerprint


@pytest.mark.slow
def test_bad_input_errors(featurizer):
    ds = Dataset.from_dict({"body": ["hello"]})
    with pytest.raises(KeyError, match=r"columns: \['body'\]"):
        featurizer.apply(ds)
    with pytest.raises(InvalidTextError, match=r"position 1 of the batch is None"):
        featurizer({"text": ["fine", None]})
    with pytest.raises(InvalidTextError, match=r"row 7 is int"):
        featurizer({"text": ["fine", 5]}, [6, 7])
    with pytest.raises(ValueError, match="unknown neuron type"):
        NAGFeaturizer(neuron_types=("fwd_sideways",))
    with pytest.raises(ValueError, match="larger than the 1536 fwd_up neurons"):
        NAGFeaturizer(top_k=2000).spec()
    lenient = NAGFeaturizer(on_invalid="null", max_length=32)
    out = lenient({"text": [None, 3, "ok text"]})
    assert out["nag_status"] == ["none", "not_string", "ok"]
    assert out["nag_fwd_up"][0] is None and out["nag_fwd_up"][2].shape == (30, 20)


@pytest.mark.slow
def test_hostile_text_does_not_crash(featurizer):
    texts = ["\x00\x01\x02 nul and control", "emoji 😀🚀 and RTL \u202e text", "\ud800 lone surrogate",
             "x" * 2_000_000]
    out = featurizer({"text": texts})
    assert out["nag_status"] == ["ok", "ok", "ok", "truncated"]
    assert all(s.shape == (30, 20) for s in out["nag_fwd_up"])


@pytest.mark.slow
def test_num_proc_workers_equal_single_process(tmp_path):
    from nag_datasets.demo_data import load_demo

    pool = load_demo("pool").select(range(12))
    pool.save_to_disk(str(tmp_path / "pool"))
    pool = load_from_disk(str(tmp_path / "pool"))
    single = NAGFeaturizer(batch_size=4, max_length=32).apply(pool)
    featurizer = NAGFeaturizer(batch_size=4, max_length=32)
    multi = pool.map(featurizer, batched=True, batch_size=4, with_rank=True, num_proc=2,
                     features=featurizer.output_features(pool.features))
    assert len(multi.cache_files) == 2  # two worker shards were really written
    assert multi["nag_status"][:] == single["nag_status"][:]
    a = np.stack(single.with_format("numpy")["nag_fwd_up"])
    b = np.stack(multi.with_format("numpy")["nag_fwd_up"])
    assert a.shape == (12, 30, 20)
    # Worker batches differ from the single-process ones; fp32 signatures agree except at near-ties.
    assert (a != b).any(axis=-1).sum() <= 3
    assert get_spec(multi, "nag_fwd_up") == get_spec(single, "nag_fwd_up")


@pytest.mark.slow
def test_last_layers_equal_the_all_layer_signatures_sliced(bundled):
    """``layers="last10"`` (the contrastive recommendation) records exactly the last ten rows of the all-layer NAGs:
    a layer's top-K does not depend on which other layers are recorded."""
    model, tok = bundled
    texts = ["Photosynthesis converts light energy into chemical energy.", "What is 17 times 23? Show your work."]
    full = NAGFeaturizer(model, tokenizer=tok, neuron_types=("fwd_up", "att_o"))
    last = NAGFeaturizer(model, tokenizer=tok, neuron_types=("fwd_up", "att_o"), layers="last10")
    a, b = full({"text": texts}), last({"text": texts})
    assert last.spec("att_o").layers == tuple(range(20, 30)) == full.spec("att_o").layers[-10:]
    for t in ("fwd_up", "att_o"):
        for row_all, row_last in zip(a[f"nag_{t}"], b[f"nag_{t}"]):
            np.testing.assert_array_equal(np.asarray(row_last), np.asarray(row_all)[20:])


@pytest.mark.slow
def test_apply_shows_progress_per_forward_batch_without_changing_results_or_fingerprint(monkeypatch):
    """Issue 26, item 16: a slow machine showed `Map: 0/214` for minutes (one map batch holds many forward batches)."""
    import importlib

    import datasets

    hf_tqdm = importlib.import_module("datasets.utils.tqdm")  # the module (datasets.utils.tqdm is also a class)
    bars = []

    class Spy(hf_tqdm.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.steps, self.name, self.off = [], kwargs.get("desc"), self.disable  # (close() sets disable)
            bars.append(self)

        def update(self, n=1):
            self.steps.append(n)
            return super().update(n)

    monkeypatch.setattr(hf_tqdm, "tqdm", Spy)
    texts = ["One short text.", "Another one here.", None, "A third text.", "Four.", "And the fifth document."]
    ds = Dataset.from_dict({"text": texts})
    featurizer = NAGFeaturizer(batch_size=2, max_length=16, on_invalid="null")
    was_disabled = hf_tqdm.are_progress_bars_disabled()  # the test session turns them off
    datasets.enable_progress_bars()
    try:
        shown = featurizer.apply(ds)
    finally:
        datasets.disable_progress_bars()
    ours = [b for b in bars if b.name == "Featurizing"]
    assert len(ours) == 1 and not ours[0].off and ours[0].total == 6
    assert sorted(ours[0].steps) == [1, 1, 2, 2]  # the forward batches of 2, 2 and 1 texts, then the None row
    bars.clear()
    quiet = featurizer.apply(ds)
    if not was_disabled:
        datasets.enable_progress_bars()
    assert [b.off for b in bars if b.name == "Featurizing"] == [True]  # datasets' switch holds for this bar too
    plain = ds.map(featurizer, batched=True, features=featurizer.output_features(ds.features), batch_size=64,
                   with_indices=True)  # what apply ran before it had a bar
    assert shown._fingerprint == quiet._fingerprint == plain._fingerprint
    assert shown.to_dict() == quiet.to_dict() == plain.to_dict()
