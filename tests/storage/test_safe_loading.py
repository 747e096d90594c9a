"""Safe loading: every file this library writes is read back without pickle, dill or numpy's pickle path; remote
code stays off unless asked for; Hub tokens never reach logs or messages."""

from __future__ import annotations

import json
import logging
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
from helpers import make_signature_dataset, make_spec, random_signatures

import nag_datasets
from nag_datasets.hub import export_for_hub, regenerate_card
from nag_datasets.scoring.target_profile import NAGProfile, ProfileError
from nag_datasets.selection.budgeted import select_top_fraction
from nag_datasets.selection.recipe import SelectionRecipe, get_recipe
from nag_datasets.signatures.formats import load_any, save_any

pytestmark = pytest.mark.fast

PACKAGE = Path(nag_datasets.__file__).resolve().parent
FAKE_TOKEN = "hf_SafeLoadingFakeToken0123456789abcdefXYZ"


class PickleUsed(AssertionError):
    pass


def _refuse(name):
    def refuse(*args, **kwargs):
        raise PickleUsed(f"{name} was called while loading our files")

    return refuse


class _RefusingUnpickler:
    def __init__(self, *args, **kwargs):
        raise PickleUsed("an Unpickler was created while loading our files")


@pytest.fixture
def no_pickle(monkeypatch):
    """Make every unpickling entry point raise (pickle, dill, numpy's allow_pickle=True, torch.load)."""
    for name in ("load", "loads", "_load", "_loads"):
        monkeypatch.setattr(pickle, name, _refuse(f"pickle.{name}"))
    monkeypatch.setattr(pickle, "Unpickler", _RefusingUnpickler)
    monkeypatch.setattr(pickle, "_Unpickler", _RefusingUnpickler)
    import dill
    import dill._dill

    for module in (dill, dill._dill):
        for name in ("load", "loads"):
            monkeypatch.setattr(module, name, _refuse(f"dill.{name}"))
        monkeypatch.setattr(module, "Unpickler", _RefusingUnpickler)
    real_np_load = np.load

    def np_load(*args, allow_pickle=False, **kwargs):
        if allow_pickle:
            raise PickleUsed("numpy.load(allow_pickle=True) was called while loading our files")
        return real_np_load(*args, allow_pickle=False, **kwargs)

    monkeypatch.setattr(np, "load", np_load)
    try:
        import torch

        monkeypatch.setattr(torch, "load", _refuse("torch.load"))
    except ImportError:  # pragma: no cover
        pass
    # The patches are live.
    with pytest.raises(PickleUsed):
        pickle.loads(b"\x80\x04K\x01.")
    with pytest.raises(PickleUsed):
        dill.loads(b"\x80\x04K\x01.")
    with pytest.raises(PickleUsed):
        np.load("anything.npy", allow_pickle=True)
    return True


@pytest.fixture
def written(tmp_path):
    """One of every kind of file the library writes, plus what each should load back to."""
    spec = make_spec(dtype="float32", model_name="m")
    n = 64
    rng = np.random.default_rng(0)
    extra = {"text": [f"doc {i}" for i in range(n)], "num_tokens": rng.integers(1, 50, n).tolist(),
             "nag_tokens": rng.integers(1, 16, n).tolist(),
             "nag_status": ["whitespace" if i in (5, 9) else "ok" for i in range(n)]}
    featurized = make_signature_dataset(random_signatures(n, spec, 1), spec, extra, null_rows=[5, 9],
                                        path=tmp_path / "featurized")
    profile = NAGProfile.from_signatures(random_signatures(20, spec, 2), spec, description="t")
    profile.save(tmp_path / "profile")
    selected, report = select_top_fraction(featurized, 0.4, token_column="num_tokens", profile=profile,
                                           return_report=True)
    for name in ("selected", "selected.parquet", "selected.jsonl"):
        save_any(selected, tmp_path / name)
    (tmp_path / "report.json").write_text(json.dumps(report.to_dict()))
    export_for_hub(selected, tmp_path / "export", token_column="num_tokens", profile=profile)
    return {"root": tmp_path, "spec": spec, "profile": profile, "selected": selected, "featurized": featurized,
            "scores": profile.score(featurized)}


def test_every_file_we_write_loads_without_unpickling(written, no_pickle, tmp_path):
    from datasets import load_dataset, load_from_disk

    root, profile, selected = written["root"], written["profile"], written["selected"]
    assert no_pickle
    # Profile folder, directly and through the Hub entry point.
    loaded = NAGProfile.load(root / "profile")
    assert loaded == profile and NAGProfile.from_pretrained(root / "profile") == profile
    # Featurized save_to_disk dataset: spec, statuses and scores intact.
    featurized = load_from_disk(str(root / "featurized"))
    assert loaded.score(featurized).tobytes() == written["scores"].tobytes()
    assert load_any(root / "featurized")["nag_status"][:] == written["featurized"]["nag_status"][:]
    # save_any outputs in every format.
    for name in ("selected", "selected.parquet", "selected.jsonl"):
        back = load_any(root / name)
        assert back["text"][:] == selected["text"][:], name
        if name != "selected.jsonl":  # JSON lines keep values, not features
            assert get_recipe(back) == get_recipe(selected), name
            assert loaded.score(back).tobytes() == loaded.score(selected).tobytes(), name
    # Hub export folder: shards, recipe file, card regeneration (reads nag_recipe.json back).
    export = load_dataset(str(root / "export"), split="train", cache_dir=str(tmp_path / "hf_cache"))
    assert export["text"][:] == selected["text"][:]
    assert get_recipe(export) == get_recipe(selected)
    assert load_any(root / "export" / "data")["text"][:] == selected["text"][:]
    regenerate_card(root / "export")
    meta = json.loads((root / "export" / "nag_recipe.json").read_text())
    assert SelectionRecipe.from_dict(meta["recipe"]) == get_recipe(selected)
    # The selection report.
    assert json.loads((root / "report.json").read_text())["documents_selected"] == len(selected)


def test_our_files_are_json_safetensors_parquet_or_arrow(written):
    """No file we write is a pickle (magic byte 0x80) or a numpy .npy/.npz."""
    allowed = {".json", ".safetensors", ".parquet", ".arrow", ".jsonl", ".md", ".png", ".lock"}
    root = written["root"]
    seen = set()
    for path in root.rglob("*"):
        if path.is_file() and "hf_cache" not in path.parts:
            seen.add(path.suffix)
            assert path.suffix in allowed, path
            head = path.read_bytes()[:2]
            assert not head.startswith(b"\x80") and head != b"\x93N", path  # pickle protocol 2+, .npy magic
    assert {".json", ".safetensors", ".parquet", ".arrow", ".jsonl"} <= seen


def _sources():
    return sorted(PACKAGE.rglob("*.py"))


def test_source_never_unpickles_or_trusts_remote_code():
    forbidden = [
        (re.compile(r"^\s*(import|from)\s+(pickle|dill|cloudpickle|joblib|shelve|marshal)\b", re.MULTILINE), "pickle import"),
        (re.compile(r"\b(pickle|dill|cloudpickle|joblib)\.(load|loads|Unpickler)\b"), "unpickling call"),
        (re.compile(r"\btorch\.load\s*\("), "torch.load"),
        (re.compile(r"allow_pickle\s*=\s*True"), "allow_pickle=True"),
        (re.compile(r"trust_remote_code\s*=\s*True"), "trust_remote_code=True"),
        (re.compile(r"\b(read_pickle|to_pickle)\s*\("), "pandas pickle"),
    ]
    assert _sources()
    for path in _sources():
        text = path.read_text()
        for pattern, what in forbidden:
            match = pattern.search(text)
            assert match is None, f"{path.name}: {what}: {match.group(0) if match else ''}"
        for call in re.finditer(r"\b(?:np|numpy)\.load\s*\(", text):
            end = text.find(")", call.end())
            assert "allow_pickle=False" in text[call.end():end], f"{path.name}: numpy.load without allow_pickle=False"


#: Remote outputs (fsspec URLs) cannot be renamed into place: they are written in place, data first and the completion
#: marker last, after a pending file that readers refuse (storage.atomic.remote_dir; tests/test_remote.py checks the
#: order and the refusals). These are the only raw writes allowed outside a temporary location; a new one is added
#: here deliberately, not by naming a variable "tmp".
REMOTE_WRITES = {
    ("location.py", 'with fs.open(p, "wb") as f:'),  # location.write_bytes/write_text: one object per call
    ("atomic.py", "location.write_text(pending, json.dumps(info))"),
    ("formats.py", 'ds.save_to_disk(url, **({"num_shards": 1} if len(ds) == 0 else {}))'),
    ("formats.py", "location.write_text(location.join(url, OUTPUT_MARKER), _marker_text())"),
    ("formats.py", "ds.to_parquet(url)"),
    ("formats.py", "location.write_text(sidecar, json.dumps(specs, indent=1))"),
    ("profile_files.py", "location.write_bytes(location.join(url, COUNTS_FILE), payload)"),
    ("profile_files.py", "location.write_text(location.join(url, META_FILE), meta_text)"),
    ("streaming.py", "ds.to_parquet(self.path(name))"),
    ("ray_select.py", "pq.write_table(table.filter(pa.array(keep)), f)"),
    # datatrove stages write through datatrove's DataFolder (one object per file); datatrove's completion markers
    # decide what reruns, and a stage-1 file cut short by a killed task is refused by stage 2 (test_datatrove_steps).
    ("budget_files.py", 'with folder.open(name, "wb") as f:'),
    ("datatrove_budget.py", 'with self.output_folder.open(SELECTION_FILE, "w") as f:'),
    ("datatrove_budget.py", "json.dump(out, f, indent=1)"),
}


def test_source_writes_files_only_atomically():
    """Audit: raw writers appear only inside a temporary location that is renamed into place afterwards (or, for
    remote URLs, in the listed writes of the marker-last protocol)."""
    raw = re.compile(r"open\([^)]*[\"'][wa]b?[\"']|\.write_text\(|\.write_bytes\(|\.to_parquet\(|\.save_to_disk\(|"
                     r"\.savefig\(|\.to_json\(str|\.to_csv\(|np\.save|write_table\(|ParquetWriter\(|save_pretrained\(|json\.dump\(")
    allowed_context = re.compile(r"tmp|scratch|extracted|buf|Path\(marker\)|fdopen\(fd|os\.devnull")
    offenders, remote_seen = [], set()
    for path in _sources():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            stripped = line.strip()
            if stripped.startswith((">>>", "...", "#")) or not raw.search(line):
                continue
            if (path.name, stripped) in REMOTE_WRITES:
                remote_seen.add((path.name, stripped))
            elif not allowed_context.search(line):
                offenders.append(f"{path.name}:{number}: {stripped}")
    assert offenders == []
    assert remote_seen == REMOTE_WRITES  # the list names only writes that exist


def test_remote_code_is_off_unless_passed(monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from nag_datasets.featurize import models
    from nag_datasets.featurize.featurizer import NAGFeaturizer

    calls = []

    def record(kind):
        def from_pretrained(source, **kwargs):
            calls.append((kind, kwargs.get("trust_remote_code")))
            raise OSError("offline in this test")

        return from_pretrained

    monkeypatch.setattr(AutoTokenizer, "from_pretrained", record("tokenizer"))
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", record("model"))
    with pytest.raises(models.ModelLoadError):
        models.load_model("someone/not-a-local-folder")
    assert calls == [("tokenizer", False)]
    calls.clear()
    with pytest.raises(models.ModelLoadError):
        models.load_model("someone/not-a-local-folder", trust_remote_code=True)
    assert calls == [("tokenizer", True)]

    seen = []

    def fake_load_model(source, **kwargs):
        seen.append(kwargs["trust_remote_code"])
        raise models.ModelLoadError("stop here")

    monkeypatch.setattr(models, "load_model", fake_load_model)
    for featurizer, expected in ((NAGFeaturizer("someone/model"), False),
                                 (NAGFeaturizer("someone/model", trust_remote_code=True), True)):
        with pytest.raises(models.ModelLoadError):
            featurizer._ensure_loaded()
        assert seen.pop() is expected
    from nag_datasets.cli.app import build_parser

    assert "trust" not in build_parser().format_help()


def test_from_pretrained_failure_hides_the_token(monkeypatch, caplog):
    import huggingface_hub

    def fail(repo_id, **kwargs):
        raise OSError(f"403 for token {kwargs.get('token')}")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fail)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ProfileError) as err:
        NAGProfile.from_pretrained("someone/profile", token=FAKE_TOKEN)
    assert "403" in str(err.value)
    assert FAKE_TOKEN not in str(err.value) and FAKE_TOKEN not in repr(err.value) and FAKE_TOKEN not in caplog.text
    assert err.value.__cause__ is None
