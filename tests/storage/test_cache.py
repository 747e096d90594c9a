"""The one cache folder: ``$NAG_DATASETS_CACHE``, else ``~/.cache/nag_datasets``."""

from __future__ import annotations

from pathlib import Path

import pytest

from nag_datasets.storage.cache import CACHE_ENV, cache_root

pytestmark = pytest.mark.fast


def test_cache_root_is_overridable(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    assert cache_root() == tmp_path


def test_cache_root_defaults_to_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_root() == Path(tmp_path) / ".cache" / "nag_datasets"
