from __future__ import annotations

import csv
import json
import pickle

import numpy as np
import pytest
from helpers import make_signature_dataset, make_spec, random_signatures, shared_dir

from nag_datasets.scoring.kernel import SignatureIndexError
from nag_datasets.scoring.map_callables import passes_threshold
from nag_datasets.scoring.target_profile import NAGProfile, ProfileError
from nag_datasets.signatures.spec import COMPARED_FIELDS, SignatureSpec, SpecError, SpecMismatchError

pytestmark = pytest.mark.fast

NEURONS = {"fwd_up": 1536, "fwd_down": 576, "att_q": 576, "att_k": 576, "att_v": 576, "att_o": 576}


@pytest.fixture
def profile(spec):
    return NAGProfile.from_signatures(random_signatures(25, spec, seed=2), spec, description="targets")


def _dice(a: set, b: set) -> float:
    return 2 * len(a & b) / (len(a) + len(b))


def test_weights_and_counts(spec, profile):
    assert profile.counts.dtype == np.uint16
    assert profile.counts.shape == (3, 32)
    np.testing.assert_allclose(profile.weights.sum(axis=1), spec.top_k)
    assert profile.num_targets == 25 and profile.skipped_null == 0


def test_similarity_is_mean_pairwise_dice(spec):
    targets = random_signatures(7, spec, seed=5)
    cands = random_signatures(20, spec, seed=6)
    profile = NAGProfile.from_signatures(targets, spec)
    scores = profile.score(cands)

    def nag_set(sig):
        return {(layer, int(k)) for layer in range(sig.shape[0]) for k in sig[layer]}

    for cand, got in zip(cands, scores):
        expected = np.mean([_dice(nag_set(cand), nag_set(t)) for t in targets])
        assert got == pytest.approx(expected, abs=1e-7)


def _official(path, neuron_type):
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    sigs = np.array([r[f"{neuron_type}_feature"]["layer_topk_value_index"] for r in rows]).reshape(len(rows), 30, 20)
    return [r["docid"] for r in rows], sigs


@pytest.mark.parametrize("neuron_type", list(NEURONS))
def test_parity_with_official_distances(neuron_type, tmp_path):
    ref = shared_dir() / "reference" / "official_demo"
    spec = SignatureSpec(model_fingerprint="smollm2", tokenizer_fingerprint="smollm2", neuron_type=neuron_type,
                         top_k=20, layers=tuple(range(30)), max_length=120, add_special_tokens=False,
                         neurons_per_layer=NEURONS[neuron_type])
    _, targets = _official(ref / "features_target.jsonl", neuron_type)
    docids, pool = _official(ref / "features_pool.jsonl", neuron_type)
    with open(ref / "pool_distances_all_types.csv") as f:
        expected = {r["docid"]: float(r[f"nag_distance_{neuron_type}"]) for r in csv.DictReader(f)}
    profile = NAGProfile.from_signatures(targets, spec)
    ds = make_signature_dataset(pool, spec, {"docid": docids}, path=tmp_path / "pool")
    for scores in (profile.score(pool), profile.score(ds)):
        distances = 1.0 - scores.astype(np.float64)
        np.testing.assert_allclose(distances, [expected[d] for d in docids], atol=1e-6, rtol=0)
    if neuron_type == "fwd_up":
        with open(ref / "pool_distances.csv") as f:
            fwd_up = {r["docid"]: float(r["nag_distance"]) for r in csv.DictReader(f)}
        np.testing.assert_allclose(1.0 - profile.score(pool).astype(np.float64), [fwd_up[d] for d in docids],
                                   atol=1e-6, rtol=0)


def test_from_dataset_skips_and_counts_nulls(spec, pool):
    sigs, ds = pool
    profile = NAGProfile.from_dataset(ds, "nag_fwd_up", description="pool")
    valid = np.ones(len(sigs), bool)
    valid[[3, 77, 399]] = False
    assert profile.skipped_null == 3 and profile.num_targets == 397
    assert profile == NAGProfile.from_signatures(sigs[valid], spec, description="pool")


def test_from_dataset_respects_indices_mapping(spec, pool):
    sigs, ds = pool
    rows = [5, 5, 10, 3, 200]
    profile = NAGProfile.from_dataset(ds.select(rows))
    assert profile.num_targets == 4 and profile.skipped_null == 1
    assert np.array_equal(profile.counts, NAGProfile.from_signatures(sigs[[5, 5, 10, 200]], spec).counts)


def test_profile_errors(spec, tmp_path):
    ds = make_signature_dataset(random_signatures(2, spec), spec, null_rows=[0, 1])
    with pytest.raises(ProfileError, match="no valid target signatures"):
        NAGProfile.from_dataset(ds)
    dup = random_signatures(2, spec)
    dup[1, 2, 1] = dup[1, 2, 0]
    with pytest.raises(ProfileError, match="row 1 repeats a neuron in layer 2"):
        NAGProfile.from_signatures(dup, spec)
    bad = random_signatures(2, spec).astype(np.int64)
    bad[0, 0, 0] = 32
    with pytest.raises(SignatureIndexError):
        NAGProfile.from_signatures(bad, spec)
    with pytest.raises(ProfileError, match="shape"):
        NAGProfile.from_signatures(random_signatures(2, make_spec(top_k=3)), spec)
    counts = np.zeros((3, 32), np.int64)
    with pytest.raises(ProfileError, match="sum to 0"):
        NAGProfile(counts, 1, spec)


def test_score_dataset_matches_array_and_nulls(profile, pool):
    sigs, ds = pool
    scores = profile.score(ds)
    expected = profile.score(sigs)
    expected[[3, 77, 399]] = np.nan
    assert scores.tobytes() == expected.tobytes()
    _, report = profile.score(ds, "nag_fwd_up", return_report=True)
    assert report.rows == 400 and report.null_rows == 3 and report.column == "nag_fwd_up"
    assert report.profile_fingerprint == profile.fingerprint


@pytest.mark.parametrize("rows", [[399, 0, 7, 7, 3, 250], list(range(399, 50, -1))])
def test_score_respects_select(profile, pool, rows):
    _, ds = pool
    full = profile.score(ds)
    assert profile.score(ds.select(rows)).tobytes() == full[rows].tobytes()


def test_score_respects_shuffle_and_filter(profile, pool):
    _, ds = pool
    full = profile.score(ds)
    shuffled = ds.shuffle(seed=3)
    assert profile.score(shuffled).tobytes() == full[np.array(shuffled["n"][:])].tobytes()
    odd = ds.filter(lambda n: n % 2 == 1, input_columns="n")
    assert profile.score(odd).tobytes() == full[1::2].tobytes()


def test_null_children_only_under_null_rows(spec, profile):
    sigs = random_signatures(3, spec)
    ok = make_signature_dataset(sigs, spec, null_rows=[1], null_children=False)
    assert np.isnan(profile.score(ok)[1])
    from datasets import Dataset, Features

    from nag_datasets.signatures.columns import signature_feature

    rows = [sigs[0].tolist(), sigs[1].tolist()]
    rows[1][2][0] = None
    broken = Dataset.from_dict({"nag_fwd_up": rows}, features=Features({"nag_fwd_up": signature_feature(spec)}))
    with pytest.raises(SpecError, match="null entries inside the signature of row 1"):
        profile.score(broken)


def test_score_scorer_and_filter_agree(profile, pool):
    _, ds = pool
    scores = profile.score(ds)
    mapped = ds.map(profile.scorer_for(ds), batched=True, batch_size=64)
    got = np.array(mapped["nag_similarity"][:], dtype=np.float32)
    assert mapped.features["nag_similarity"].dtype == "float32"
    assert got.tobytes() == scores.tobytes()
    threshold = float(np.nanmedian(scores))
    kept = ds.filter(profile.filter(threshold, dataset=ds), batched=True, batch_size=50)
    expected_rows = np.flatnonzero(passes_threshold(scores, threshold))
    assert kept["n"][:] == expected_rows.tolist()
    numpy_mapped = ds.with_format("numpy").map(profile.scorer(dataset=ds), batched=True, batch_size=100)
    assert np.array(numpy_mapped["nag_similarity"][:], np.float32).tobytes() == scores.tobytes()


def test_scorer_is_picklable_and_hashes_stably(profile):
    from datasets.fingerprint import Hasher

    scorer = profile.scorer("nag_fwd_up", check_spec=False)  # bare batches: the caller vouches for the spec
    clone = pickle.loads(pickle.dumps(scorer))
    assert Hasher.hash(scorer) == Hasher.hash(clone)
    batch = {"nag_fwd_up": [None, random_signatures(1, profile.spec)[0].tolist()]}
    out = clone(batch)["nag_similarity"]
    assert np.isnan(out[0]) and out[1] == profile.score(np.array(batch["nag_fwd_up"][1:]))[0]


def _changed(spec: SignatureSpec, field: str) -> SignatureSpec:
    value = getattr(spec, field)
    new = {
        "model_fingerprint": "model-b", "tokenizer_fingerprint": "tok-b", "neuron_type": "att_q", "top_k": 3,
        "layers": (0, 1, 5), "max_length": 32, "add_special_tokens": True, "neurons_per_layer": 64,
        "impact_version": "999",
    }[field]
    assert new != value
    return spec.replace(**{field: new})


@pytest.mark.parametrize("field", COMPARED_FIELDS)
def test_spec_mismatch_refused_for_every_field(spec, profile, field):
    other = _changed(spec, field)
    ds = make_signature_dataset(random_signatures(4, other), other, column="nag_fwd_up")
    left, right = repr(spec.to_dict()[field]), repr(other.to_dict()[field])
    for call in (lambda: profile.score(ds, "nag_fwd_up"), lambda: profile.scorer_for(ds, "nag_fwd_up"),
                 lambda: profile.filter(0.1, "nag_fwd_up", dataset=ds)):
        with pytest.raises(SpecMismatchError) as err:
            call()
        message = str(err.value)
        assert field in message and left in message and right in message


def test_column_without_spec_refused(profile):
    from datasets import Dataset

    ds = Dataset.from_dict({"nag_fwd_up": random_signatures(2, profile.spec).tolist()})
    with pytest.raises(SpecError, match="attach_spec"):
        profile.score(ds)


def test_array_shape_checked(profile):
    with pytest.raises(ValueError, match="expects"):
        profile.score(np.zeros((2, 3, 5), np.uint16))


def test_save_load_round_trip(profile, pool, tmp_path):
    _, ds = pool
    folder = profile.save(tmp_path / "p")
    assert sorted(p.name for p in folder.iterdir()) == ["profile.json", "profile.safetensors"]
    loaded = NAGProfile.load(folder)
    assert loaded == profile and loaded.fingerprint == profile.fingerprint
    assert loaded.score(ds).tobytes() == profile.score(ds).tobytes()
    other = NAGProfile.from_signatures(random_signatures(3, profile.spec, seed=9), profile.spec)
    other.save(folder)
    assert NAGProfile.load(folder) == other
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p", "pool"]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "keep.txt").write_text("user data")
    with pytest.raises(ProfileError, match="refusing to replace"):
        profile.save(tmp_path / "data")
    assert (tmp_path / "data" / "keep.txt").read_text() == "user data"


def test_score_refuses_other_containers(profile):
    from datasets import DatasetDict

    ds = make_signature_dataset(random_signatures(2, profile.spec), profile.spec)
    with pytest.raises(TypeError, match="streaming"):
        profile.score(ds.to_iterable_dataset())
    with pytest.raises(TypeError, match="DatasetDict"):
        profile.score(DatasetDict({"train": ds}))


def test_load_rejects_damaged_files(profile, tmp_path):
    folder = profile.save(tmp_path / "p")
    meta_path, counts_path = folder / "profile.json", folder / "profile.safetensors"
    meta, payload = meta_path.read_text(), counts_path.read_bytes()

    def restore():
        meta_path.write_text(meta)
        counts_path.write_bytes(payload)

    counts_path.write_bytes(payload[: len(payload) // 2])
    with pytest.raises(ProfileError, match="sha256"):
        NAGProfile.load(folder)
    restore()
    flipped = bytearray(payload)
    flipped[-1] ^= 0xFF
    counts_path.write_bytes(bytes(flipped))
    with pytest.raises(ProfileError, match="sha256"):
        NAGProfile.load(folder)
    restore()
    meta_path.write_text(meta[:40])
    with pytest.raises(ProfileError, match="not valid JSON"):
        NAGProfile.load(folder)
    restore()
    # A consistent hash over bytes that are not safetensors.
    import hashlib

    d = json.loads(meta)
    counts_path.write_bytes(b"garbage")
    d["counts_sha256"] = hashlib.sha256(b"garbage").hexdigest()
    meta_path.write_text(json.dumps(d))
    with pytest.raises(ProfileError, match="safetensors"):
        NAGProfile.load(folder)
    restore()
    # Valid file and hash, but counts that contradict the spec or top_k.
    from safetensors.numpy import save

    for counts, pattern in ((np.zeros((3, 31), np.uint16), "shape"), (np.zeros((3, 32), np.uint16), "sum to")):
        blob = save({"counts": counts})
        counts_path.write_bytes(blob)
        d["counts_sha256"] = hashlib.sha256(blob).hexdigest()
        meta_path.write_text(json.dumps(d))
        with pytest.raises(ProfileError, match=pattern):
            NAGProfile.load(folder)
    restore()
    (folder / "profile.safetensors").unlink()
    with pytest.raises(ProfileError, match="missing"):
        NAGProfile.load(folder)
    with pytest.raises(ProfileError, match="missing"):
        NAGProfile.load(tmp_path / "nowhere")


def test_fingerprint(profile):
    same = NAGProfile(profile.counts, profile.num_targets, profile.spec, "another label")
    assert same.fingerprint == profile.fingerprint
    merged = NAGProfile.merge([profile, profile])
    assert merged.fingerprint != profile.fingerprint
    assert len(profile.fingerprint) == 16


def test_merge_sums_counts_and_checks_specs(spec, profile):
    other = NAGProfile.from_signatures(random_signatures(4, spec, seed=11), spec, description="b")
    merged = NAGProfile.merge([profile, other])
    assert merged.num_targets == 29
    assert np.array_equal(merged.counts, profile.counts.astype(int) + other.counts)
    assert "merged" in merged.description
    foreign = make_spec(model_fingerprint="model-b")
    with pytest.raises(SpecMismatchError, match="model_fingerprint"):
        NAGProfile.merge([profile, NAGProfile.from_signatures(random_signatures(2, foreign), foreign)])


def test_fingerprint_is_a_read_only_property_of_every_profile_kind(profile, spec):
    import hashlib

    from datasets.fingerprint import Hasher

    background = NAGProfile.from_signatures(random_signatures(9, spec, seed=5), spec)
    h = hashlib.sha256(b"nag_datasets.profile/1\0")
    h.update(spec.fingerprint.encode())
    h.update(f"\0{profile.num_targets}\0{profile.counts.shape}\0".encode())
    h.update(profile.counts.astype("<u4").tobytes())
    assert profile.fingerprint == h.hexdigest()[:16]  # the value saved files record is unchanged
    for p in (profile, profile.contrast(background)):
        assert isinstance(p.fingerprint, str) and len(p.fingerprint) == 16
        with pytest.raises(AttributeError):
            p.fingerprint = "x"
    contrastive = profile.contrast(background)
    assert contrastive.fingerprint != profile.fingerprint  # the contrastive hash, not the base one it builds on
    # Reading the fingerprint does not change what `datasets` hashes for a map callable holding the profile.
    fresh = NAGProfile(profile.counts, profile.num_targets, spec)
    before = Hasher.hash(fresh.scorer(check_spec=False))
    assert fresh.fingerprint
    assert Hasher.hash(fresh.scorer(check_spec=False)) == before


def test_a_seed_without_a_sample_is_refused_and_a_sample_alone_draws_with_seed_0(spec, pool):
    """Issue 26: ``from_dataset(ds, seed=3)`` without ``sample`` ignored the seed without a word."""
    _, ds = pool
    with pytest.raises(ProfileError, match=r"seed=3 draws a sample of the rows, but no sample= was given"):
        NAGProfile.from_dataset(ds, seed=3)
    default = NAGProfile.from_dataset(ds, sample=50)
    assert default.fingerprint == NAGProfile.from_dataset(ds, sample=50, seed=0).fingerprint
    assert default.sample_info["seed"] == 0  # saved sample_info (and so fingerprints) as before
    assert NAGProfile.from_dataset(ds, sample=50, seed=3).fingerprint != default.fingerprint


def test_the_column_defaults_to_the_only_signature_column(spec):
    """Issue 26: the default column was ``nag_fwd_up`` even when ``nag_att_o`` was the only signature column."""
    from datasets import concatenate_datasets

    from nag_datasets.errors import InvalidArgumentError, MissingColumnError

    att = make_spec(neuron_type="att_o")
    only_att = make_signature_dataset(random_signatures(6, att), att)
    assert NAGProfile.from_dataset(only_att).spec.neuron_type == "att_o"
    custom = make_signature_dataset(random_signatures(6, spec), spec, column="my_signatures")  # typed, any name
    assert NAGProfile.from_dataset(custom).num_targets == 6
    both = concatenate_datasets([only_att, make_signature_dataset(random_signatures(6, spec), spec)], axis=1)
    with pytest.raises(InvalidArgumentError, match=r"2 signature columns \(nag_att_o, nag_fwd_up\): pass column="):
        NAGProfile.from_dataset(both)
    assert NAGProfile.from_dataset(both, column="nag_att_o") == NAGProfile.from_dataset(only_att)
    with pytest.raises(MissingColumnError, match="no signature column"):
        NAGProfile.from_dataset(only_att.add_column("text", ["x"] * 6).remove_columns("nag_att_o"))


def test_a_pandas_dataframe_is_accepted_where_a_dataset_is(spec, pool, profile, tmp_path, monkeypatch):
    """Issue 26: ``from_dataset(df)`` raised AttributeError and ``profile.score(df)`` a shape error."""
    from nag_datasets.selection.budgeted import select_top_fraction
    from nag_datasets.signatures.registry import register_spec
    from nag_datasets.signatures.spec_column import spec_value

    monkeypatch.setenv("NAG_DATASETS_CACHE", str(tmp_path / "cache"))
    register_spec(spec)
    _, ds = pool
    ds = ds.add_column("nag_spec", [spec_value({"nag_fwd_up": spec})] * len(ds))
    df = ds.to_pandas()
    assert NAGProfile.from_dataset(df) == NAGProfile.from_dataset(ds)
    assert profile.score(df).tobytes() == profile.score(ds).tobytes()  # NaN rows included
    from_df = select_top_fraction(df.assign(num_tokens=1), 0.3, token_column="num_tokens", profile=profile)
    from_ds = select_top_fraction(ds.add_column("num_tokens", [1] * len(ds)), 0.3, token_column="num_tokens",
                                  profile=profile)
    assert from_df["n"][:] == from_ds["n"][:]
    # Without the nag_spec column nothing says how the signatures were made: the usual refusal, with the fix.
    with pytest.raises(SpecError, match="attach_spec"):
        profile.score(df.drop(columns=["nag_spec"]))
    with pytest.raises(SpecError, match="attach_spec"):
        NAGProfile.from_dataset(df.drop(columns=["nag_spec"]))
