"""What a pipeline step needs from a scorer: scores and token counts of a batch of texts.

:class:`TextScorer` is the protocol (any object with ``score_texts`` and ``count_tokens``; a distilled linear
scorer can implement it); :class:`ProfileTextScorer` is the NAG one: featurize with an :class:`NAGFeaturizer`,
score against an :class:`NAGProfile` (the paper's or a contrastive one) with the profile's own kernel, so the
scores are bit-equal to ``profile.score`` over the same signatures.

>>> import numpy as np
>>> class Words:  # a stand-in scorer: longer texts score higher
...     def score_texts(self, texts):
...         return np.array([len(t.split()) for t in texts], dtype=np.float32)
...     def count_tokens(self, texts):
...         return [len(t.split()) for t in texts]
>>> isinstance(Words(), TextScorer)
True
>>> scored = score_batch(Words(), ["a b", "c"])
>>> scored.scores.tolist(), scored.tokens.tolist(), scored.signatures is None
([2.0, 1.0], [2, 1], True)
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import InvalidArgumentError, WrongTypeError
from ..signatures.columns import column_name
from ..signatures.spec import SpecError

__all__ = ["ProfileTextScorer", "ScoredBatch", "TextScorer", "score_batch"]


@runtime_checkable
class TextScorer(Protocol):
    """Anything that scores texts (higher is better; NaN = not scorable) and counts their tokens."""

    def score_texts(self, texts: list[str]) -> np.ndarray:
        """One float score per text, in order."""
        ...

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Each text's full token count (what the budget counts), in order."""
        ...


@dataclasses.dataclass
class ScoredBatch:
    """Scores (float), token counts (int64) and, for a NAG scorer, signatures (``(L, K)`` arrays, None if null)."""

    scores: np.ndarray
    tokens: np.ndarray
    signatures: list[np.ndarray | None] | None = None


class ProfileTextScorer:
    """The NAG :class:`TextScorer`: signatures from ``featurizer``, scored against ``profile``.

    Holds configuration only (the featurizer loads its model lazily, once per process). Token counts are full
    documents in the featurizer's tokenizer (:class:`nag_datasets.selection.tokens.TokenCounter`), as
    ``count_tokens(ds, featurizer.tokenizer)`` counts them. A profile with the embedding signal (embedding or hybrid)
    needs a featurizer that computes the same embedding (``NAGFeaturizer(..., embedding="last")``): refused otherwise,
    and every batch's ``nag_spec`` is checked against both specs. Each call featurizes its texts as one ``map`` batch
    would (the featurizer's own :func:`~nag_datasets.featurize.batching.length_sorted_batches`: rows sorted by
    length, forward passes of ``featurizer.batch_size``).

    >>> from nag_datasets import NAGFeaturizer, NAGProfile
    >>> from nag_datasets.demo_data import load_demo
    >>> featurizer = NAGFeaturizer(torch_threads=1)
    >>> profile = NAGProfile.from_dataset(featurizer.apply(load_demo("target").select(range(4))))
    >>> scorer = ProfileTextScorer(profile, featurizer)
    >>> scored = scorer.score_with_signatures(["Question: 2 + 3? Answer: 5", "def f(): pass"])
    >>> scored.scores.dtype, scored.signatures[0].shape
    (dtype('float32'), (30, 20))
    """

    def __init__(self, profile: Any, featurizer: Any, *, rank: int | None = None) -> None:
        from ..featurize.featurizer import NAGFeaturizer
        from ..scoring.profile_base import Profile

        if not isinstance(profile, Profile):
            raise WrongTypeError(f"profile must be an NAGProfile (or ContrastiveProfile), got {type(profile).__name__}")
        if not isinstance(featurizer, NAGFeaturizer):
            raise WrongTypeError(f"featurizer must be an NAGFeaturizer, got {type(featurizer).__name__}")
        spec = profile.spec
        if spec.neuron_type not in featurizer.neuron_types:
            raise SpecError(
                f"the profile scores {spec.neuron_type} signatures, the featurizer computes "
                f"{featurizer.neuron_types}: add {spec.neuron_type!r} to its neuron_types"
            )
        for field in ("top_k", "max_length", "add_special_tokens"):
            if getattr(featurizer, field) != getattr(spec, field):
                raise SpecError(
                    f"the featurizer's {field}={getattr(featurizer, field)!r} differs from the profile "
                    f"spec's {field}={getattr(spec, field)!r}"
                )
        if profile.embedding_spec is not None and featurizer.embedding is None:
            from ..signatures.embedding_column import EMBEDDING_FIX

            raise SpecError(f"the profile scores with the {profile.signal} signal, which needs the nag_embedding column "
                            f"(layer {profile.embedding_spec.layer}), and this featurizer computes none: "
                            f"{EMBEDDING_FIX}")
        self.profile = profile
        self.featurizer = featurizer
        self.rank = rank
        self.column = column_name(spec.neuron_type)
        # Checks every batch's nag_spec (model, tokenizer, layers, ...) against the profile's spec.
        self._scorer = profile.scorer(self.column)
        self._counter: Any = None

    def score_with_signatures(self, texts: list[str]) -> ScoredBatch:
        """Scores (float32, NaN for texts without a signature), token counts and signatures of ``texts``."""
        batch = {self.featurizer.text_column: list(texts)}
        out = self.featurizer(batch) if self.rank is None else self.featurizer(batch, self.rank)
        scores = self._scorer.scores(out)
        return ScoredBatch(scores, np.asarray(self.count_tokens(texts), dtype=np.int64), list(out[self.column]))

    def score_texts(self, texts: list[str]) -> np.ndarray:
        """Float32 scores of ``texts`` against the profile (NaN for texts without a signature)."""
        return self.score_with_signatures(texts).scores

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Full token counts of ``texts`` in the featurizer's tokenizer (no truncation, no special tokens)."""
        from ..selection.tokens import TokenCounter

        if self._counter is None:
            self._counter = TokenCounter(self.featurizer.tokenizer, column="text")
        return [int(n) for n in self._counter({"text": list(texts)})["num_tokens"]]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_counter"] = None  # holds the tokenizer; rebuilt from the featurizer after unpickling
        return state


def score_batch(scorer: Any, texts: list[str], *, signatures: bool = False) -> ScoredBatch:
    """Score ``texts`` with a :class:`ProfileTextScorer` or any :class:`TextScorer`, checking what comes back."""
    if isinstance(scorer, ProfileTextScorer):
        scored = scorer.score_with_signatures(texts)
        if not signatures:
            scored.signatures = None
        return scored
    if signatures:
        raise WrongTypeError(f"signatures come from a NAG scorer (ProfileTextScorer), not {type(scorer).__name__}")
    scores = np.asarray(scorer.score_texts(texts))
    tokens = np.asarray(scorer.count_tokens(texts))
    name = type(scorer).__name__
    if scores.shape != (len(texts),) or scores.dtype.kind != "f":
        raise InvalidArgumentError(
            f"{name}.score_texts returned {scores.dtype} of shape {scores.shape} for {len(texts)} "
            "texts; it must return one float per text"
        )
    if tokens.shape != (len(texts),) or tokens.dtype.kind not in "iu" or (len(tokens) and tokens.min() < 0):
        raise InvalidArgumentError(f"{name}.count_tokens must return one non-negative integer per text, got {tokens!r}")
    return ScoredBatch(scores, tokens.astype(np.int64))
