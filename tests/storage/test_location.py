"""Where data lives: telling two names of one place apart from two places, and an output that holds nothing."""

from __future__ import annotations

import os

import pytest

from nag_datasets.errors import NAGError, OverlappingPathsError
from nag_datasets.storage.location import check_apart, occupied

pytestmark = pytest.mark.fast


@pytest.mark.parametrize(("output", "given", "relation"), [
    ("pool", "pool", "is also the input"),
    ("pool/sub", "pool", "lies inside the input pool"),
    ("pool", "pool/sub", "holds the input pool/sub"),
    ("./pool/../pool/", "pool", "is also the input (pool)"),
    ("file://{tmp}/pool", "{tmp}/pool/a.parquet", "holds the input"),
    ("local://{tmp}/pool", "{tmp}/pool", "is also the input"),
    ("memory://bucket/pool/sel", "memory://bucket/pool", "lies inside the input memory://bucket/pool"),
    ("s3://bucket/pool", "s3://bucket/pool/", "is also the input"),
])
def test_an_output_overlapping_an_input_is_refused_by_relation(tmp_path, monkeypatch, output, given, relation):
    monkeypatch.chdir(tmp_path)
    output, given = output.format(tmp=tmp_path), given.format(tmp=tmp_path)
    with pytest.raises(OverlappingPathsError, match=relation.replace("(", r"\(").replace(")", r"\)")) as info:
        check_apart(output, {"the input": given})
    assert isinstance(info.value, NAGError) and isinstance(info.value, ValueError)
    assert "choose an output outside every input" in str(info.value)


def test_a_symlink_to_the_input_is_the_input(tmp_path):
    (tmp_path / "pool").mkdir()
    os.symlink(tmp_path / "pool", tmp_path / "alias")
    with pytest.raises(OverlappingPathsError, match="is also the input"):
        check_apart(tmp_path / "alias", {"the input": tmp_path / "pool"})


@pytest.mark.parametrize(("output", "given"), [
    ("pool2", "pool"), ("pool", "pool2"), ("memory://b/pool", "pool"), ("s3://b/pool", "gs://b/pool"),
    ("memory://b/x", "memory://b/xy"),
])
def test_distinct_places_pass(tmp_path, monkeypatch, output, given):
    monkeypatch.chdir(tmp_path)
    check_apart(output, {"the input": given, "the profile": None})


def test_an_empty_folder_holds_nothing_to_lose(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    (tmp_path / "file").write_text("x")
    assert [occupied(tmp_path / n) for n in ("empty", "full", "file", "missing")] == [False, True, True, False]
