"""The local spec registry: every spec a featurizer produces (signature and embedding specs), by fingerprint, so a refusal can name what differs.

A per-row ``nag_spec`` value names a spec by its fingerprint only (:mod:`.spec_column`). The featurizer writes each
spec it makes to ``<cache root>/specs/<fingerprint>.json`` (the cache root is ``$NAG_DATASETS_CACHE``, default
``~/.cache/nag_datasets``); a check that meets a fingerprint registered on this machine compares the two specs field
by field, and one that meets an unknown fingerprint says so.

>>> import os, tempfile
>>> from nag_datasets.signatures.spec import SignatureSpec
>>> os.environ["NAG_DATASETS_CACHE"] = tempfile.mkdtemp()
>>> spec = SignatureSpec(model_fingerprint="m", tokenizer_fingerprint="t", neuron_type="fwd_up", top_k=2,
...                      layers=(0, 1), max_length=8, add_special_tokens=False, neurons_per_layer=4)
>>> known_spec(spec.fingerprint()) is None
True
>>> register_spec(spec); known_spec(spec.fingerprint()) == spec
True
>>> del os.environ["NAG_DATASETS_CACHE"]
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from ..storage.atomic import atomic_write_text
from ..storage.cache import cache_root
from .embedding_spec import EmbeddingSpec, spec_from_dict
from .spec import SignatureSpec, SpecError

__all__ = ["known_spec", "register_spec", "spec_path"]


def spec_path(fingerprint: str) -> Path:
    """Where the spec with ``fingerprint`` is (or would be) registered on this machine."""
    return cache_root() / "specs" / f"{Path(fingerprint).name}.json"


def register_spec(spec: SignatureSpec | EmbeddingSpec) -> None:
    """Write ``spec`` (a signature or an embedding spec) to the local registry (atomic; an unwritable cache only
    loses the named-field detail)."""
    path = spec_path(spec.fingerprint())
    with contextlib.suppress(OSError):
        if not path.is_file():
            atomic_write_text(path, spec.to_json() + "\n")


def known_spec(fingerprint: str) -> SignatureSpec | EmbeddingSpec | None:
    """The spec (signature or embedding) registered under ``fingerprint`` on this machine, or None."""
    try:
        spec = spec_from_dict(json.loads(spec_path(fingerprint).read_text()))
    except (OSError, ValueError, SpecError):
        return None
    return spec if spec.fingerprint() == fingerprint else None
