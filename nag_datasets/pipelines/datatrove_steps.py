"""datatrove pipeline steps: score documents against a profile (or any :class:`TextScorer`), filter by the score.

:class:`NAGDocumentScorer` writes each document's score and full token count into ``doc.metadata`` (and, on
request, its signature), working through the task's documents in batches; :class:`NAGScoreFilter` keeps the
documents scoring at least a threshold. For a global token budget see :mod:`.datatrove_budget`.

>>> import numpy as np
>>> from datatrove.data import Document
>>> class Words:  # any object with score_texts and count_tokens plugs in (see TextScorer)
...     def score_texts(self, texts):
...         return np.array([len(t.split()) for t in texts], dtype=np.float32)
...     def count_tokens(self, texts):
...         return [len(t.split()) for t in texts]
>>> docs = [Document(text="one two three", id="a"), Document(text="four", id="b")]
>>> pipeline = NAGScoreFilter(2.0)(NAGDocumentScorer(Words())(docs))
>>> [(d.id, d.metadata["nag_score"], d.metadata["nag_num_tokens"]) for d in pipeline]
[('a', 3.0, 3)]

With a profile: ``NAGDocumentScorer(profile=profile, featurizer=NAGFeaturizer(torch_threads=1))``; the model is
loaded once per task, on its first batch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..errors import InvalidArgumentError, NAGError, WrongTypeError
from ..scoring.map_callables import passes_threshold
from ._datatrove import BaseFilter, PipelineStep
from .text_scorer import ProfileTextScorer, TextScorer, score_batch

__all__ = ["SCORE_KEY", "TOKENS_KEY", "MissingScoreError", "NAGDocumentScorer", "NAGScoreFilter"]

#: ``doc.metadata`` keys the steps write and read by default.
SCORE_KEY = "nag_score"
TOKENS_KEY = "nag_num_tokens"


class MissingScoreError(NAGError, ValueError):
    """A document reached a step that reads its score or token count, but no scoring step wrote them."""


def metadata_value(doc: Any, key: str, step: str) -> Any:
    """``doc.metadata[key]``, or :class:`MissingScoreError` naming the step that writes it."""
    try:
        return doc.metadata[key]
    except KeyError:
        raise MissingScoreError(
            f"document {doc.id!r} has no metadata[{key!r}]: put NAGDocumentScorer (with that "
            f"key) before {step} in the pipeline"
        ) from None


class NAGDocumentScorer(PipelineStep):
    """Scores documents in batches and writes ``metadata[score_key]`` (float, None without a score) and
    ``metadata[tokens_key]`` (full token count); with ``signature_key``, also the NAG signature (``L`` lists of
    ``K`` neuron indices, None for a text without one).

    Parameters:
        scorer: any :class:`TextScorer`; or leave it out and give ``profile`` and ``featurizer``.
        profile, featurizer: an :class:`NAGProfile` (or ``ContrastiveProfile``) and the (configuration-only)
            :class:`NAGFeaturizer` that computes its signatures; scores are bit-equal to ``profile.score``.
        batch_size: documents featurized together; the featurizer sorts them by length and runs forward passes of
            its own ``batch_size`` (more documents per batch, less padding).
    """

    name = "🧠 NAG scorer"
    type = "🔢 - SCORER"

    def __init__(
        self,
        scorer: TextScorer | None = None,
        *,
        profile: Any = None,
        featurizer: Any = None,
        batch_size: int = 256,
        score_key: str = SCORE_KEY,
        tokens_key: str = TOKENS_KEY,
        signature_key: str | None = None,
    ) -> None:
        super().__init__()
        if (scorer is None) == (profile is None):
            raise WrongTypeError("give either scorer= (any TextScorer) or profile= and featurizer=, not both or "
                                 "neither")
        if profile is not None:
            if featurizer is None:
                raise WrongTypeError(
                    "a profile needs the featurizer that computes its signatures: featurizer=NAGFeaturizer(...)"
                )
            scorer = ProfileTextScorer(profile, featurizer)
        elif featurizer is not None:
            raise WrongTypeError("featurizer= goes with profile=; a scorer= featurizes by itself")
        elif not isinstance(scorer, TextScorer):
            raise WrongTypeError(
                f"{type(scorer).__name__} is not a TextScorer: it needs score_texts(texts) -> float array "
                "and count_tokens(texts) -> list of ints"
            )
        if signature_key is not None and not isinstance(scorer, ProfileTextScorer):
            raise WrongTypeError("signature_key needs a NAG scorer (profile= and featurizer=)")
        if batch_size < 1:
            raise InvalidArgumentError(f"batch_size must be >= 1, got {batch_size}")
        self.scorer = scorer
        self.batch_size = int(batch_size)
        self.score_key = score_key
        self.tokens_key = tokens_key
        self.signature_key = signature_key

    def run(self, data: Any, rank: int = 0, world_size: int = 1) -> Iterator[Any]:
        from datatrove.utils.batching import batched

        if isinstance(self.scorer, ProfileTextScorer):
            self.scorer.rank = rank  # picks this task's device when several GPUs exist
        for batch in batched(data or (), self.batch_size):
            self.stat_update("batches")
            with self.track_time("batch"):
                scored = score_batch(
                    self.scorer, [doc.text for doc in batch], signatures=self.signature_key is not None
                )
            for i, doc in enumerate(batch):
                score = float(scored.scores[i])
                tokens = int(scored.tokens[i])
                doc.metadata[self.score_key] = None if math.isnan(score) else score
                doc.metadata[self.tokens_key] = tokens
                if self.signature_key is not None:
                    sig = scored.signatures[i]  # type: ignore[index]
                    doc.metadata[self.signature_key] = None if sig is None else np.asarray(sig).tolist()
                self.stat_update("scored" if not math.isnan(score) else "no_score")
                self.stat_update("tokens", value=tokens)
                yield doc


class NAGScoreFilter(BaseFilter):
    """Keeps documents whose ``metadata[score_key] >= min_score`` (compared in float64, as ``profile.filter`` does);
    documents without a score are dropped (reason ``no_score``). ``exclusion_writer`` saves the dropped ones."""

    name = "🧠 NAG score filter"

    def __init__(self, min_score: float, *, score_key: str = SCORE_KEY, exclusion_writer: Any = None) -> None:
        super().__init__(exclusion_writer)
        self.min_score = float(min_score)
        if math.isnan(self.min_score):
            raise InvalidArgumentError("min_score must be a number, not NaN")
        self.score_key = score_key

    def filter(self, doc: Any) -> bool | tuple[bool, str]:
        score = metadata_value(doc, self.score_key, "NAGScoreFilter")
        if score is None:
            return False, "no_score"
        if passes_threshold(np.array([score], dtype=np.float64), self.min_score)[0]:
            return True
        return False, "below_threshold"
