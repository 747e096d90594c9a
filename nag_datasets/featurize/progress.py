"""Progress of a featurization: a ``Featurizing`` bar over documents, moved after every forward batch.

:meth:`NAGFeaturizer.apply <nag_datasets.featurize.featurizer.NAGFeaturizer.apply>` opens the bar with
:func:`progress`; the featurizer's ``__call__`` moves it with :func:`advance`. The bar lives in a context variable, not
on the featurizer, because `datasets` hashes the featurizer for the map cache fingerprint.

>>> advance(3)   # no bar open: nothing happens
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

__all__ = ["advance", "progress"]

#: The progress bar of the running :meth:`NAGFeaturizer.apply` (kept off the featurizer: the map fingerprint hashes it).
_BAR: contextvars.ContextVar[Any] = contextvars.ContextVar("nag_featurize_progress", default=None)


@contextlib.contextmanager
def progress(ds: Any, map_kwargs: dict[str, Any]) -> Iterator[None]:
    """A ``Featurizing`` bar over ``ds``'s documents while ``apply`` maps it in this process (datasets' switch,
    ``datasets.disable_progress_bars()``, turns it off; worker processes of ``num_proc`` > 1 show only map's bar).
    A map batch holds many forward batches: map's own bar moves only once per map batch."""
    from datasets.utils.tqdm import tqdm

    total = len(ds) if hasattr(ds, "__len__") else None
    if (map_kwargs.get("num_proc") or 1) > 1:
        yield
        return
    bar = tqdm(total=total, desc="Featurizing", unit=" documents", leave=False)
    token = _BAR.set(bar)
    try:
        yield
    finally:
        _BAR.reset(token)
        bar.close()


def advance(rows: int) -> None:
    """Move the open bar by ``rows`` documents (no bar: nothing)."""
    bar = _BAR.get()
    if bar is not None and rows:
        bar.update(rows)
