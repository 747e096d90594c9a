"""The fast text models a NAG ranking is distilled into: fastText, and a linear model on hashed word and
character n-grams.

Both learn from ``(texts, targets)`` (1/0 labels, or scores for the linear model's regression) and predict one
float per text, higher = more like the NAG profile's top, and both save without pickle: fastText in its own ``.bin``
format (loadable by ``fasttext.load_model`` and by datatrove's fastText classifier filter), the linear model as
safetensors weights plus its settings in the folder's JSON.

Determinism: the linear model (scikit-learn, ``random_state=seed``) gives the same bytes and scores for the same
data and seed. fastText does **not** with the build that installs here with numpy 2 (``fasttext-numpy2-wheel``
0.9.2), even on one thread with a fixed ``seed``: its one-thread initialisation leaves nine tenths of the input
matrix uninitialised (two trainings differ, some stop with "Encountered NaN"), so it trains on ten threads, which
initialise all of it but make training Hogwild-parallel. A saved fastText model scores deterministically;
retraining does not reproduce its bytes. The library's default is therefore the linear model.

>>> sorted(MODEL_KINDS)
['fasttext', 'linear']
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import MissingDependencyError
from .labels import DistillError

__all__ = ["FASTTEXT_LABEL", "MODEL_KINDS", "DistilledModel", "FastTextModel", "HashedLinearModel", "default_rule_mode",
           "model_class"]

#: fastText's positive label; datatrove's ``FastTextClassifierFilter(model_url, keep_labels=[("nag", t)])`` keeps
#: documents whose probability of it is at least ``t``.
FASTTEXT_LABEL = "nag"
_NEGATIVE_LABEL = "other"
#: fastText initialises its input matrix in 10 blocks, one per thread (see ``FastTextModel.fit``).
_FASTTEXT_THREADS = 10
_LINE_BREAKS = re.compile(r"[\n\r\v\f\x00\x85\u2028\u2029]")


def _require_fasttext() -> Any:
    try:
        import fasttext
    except ImportError:
        raise MissingDependencyError("the fastText distilled scorer needs fastText: pip install "
                                     "'nag-datasets[distill]' (fasttext-numpy2-wheel)") from None
    return fasttext


def _require_sklearn() -> Any:
    try:
        from sklearn.feature_extraction import text
    except ImportError:
        raise MissingDependencyError("the linear distilled scorer needs scikit-learn: pip install "
                                     "'nag-datasets[distill]'") \
            from None
    return text


def one_line(text: str) -> str:
    """``text`` with line breaks as spaces: fastText reads one document per line (datatrove's filter does the same).

    >>> one_line("a\\nb")
    'a b'
    """
    return _LINE_BREAKS.sub(" ", text)


class DistilledModel:
    """A trained text model: ``fit``, ``predict``, ``save`` into a folder, ``load`` from one. Subclasses set
    ``kind`` and ``files`` (the files ``save`` writes, all fingerprinted by the scorer folder's JSON)."""

    kind: ClassVar[str] = ""
    files: ClassVar[tuple[str, ...]] = ()
    regression: ClassVar[bool] = False

    def __init__(self, **params: Any) -> None:
        self.params = {**self.defaults(), **params}
        unknown = sorted(set(self.params) - set(self.defaults()))
        if unknown:
            raise DistillError(f"unknown {self.kind} parameters {unknown}; known: {sorted(self.defaults())}")

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        raise NotImplementedError

    def fit(self, texts: Sequence[str], targets: np.ndarray, seed: int) -> DistilledModel:
        raise NotImplementedError

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        raise NotImplementedError

    def save(self, folder: Path) -> None:
        raise NotImplementedError

    @classmethod
    def load(cls, folder: Path, params: dict[str, Any], state: dict[str, Any]) -> DistilledModel:
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        """Small JSON-able values the saved model needs besides its files (versions, intercepts)."""
        return {}


class FastTextModel(DistilledModel):
    """fastText supervised classifier (labels ``__label__nag`` / ``__label__other``); score = P(nag)."""

    kind = "fasttext"
    files = ("model.bin",)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._model: Any = None

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        # bucket 2^18 x dim 16 keeps the file near 17 MB (fastText's default 2M buckets x 100 would be 800 MB).
        return {"dim": 16, "epoch": 20, "lr": 0.5, "wordNgrams": 2, "minCount": 1, "bucket": 1 << 18,
                "loss": "softmax"}

    def fit(self, texts: Sequence[str], targets: np.ndarray, seed: int) -> FastTextModel:
        fasttext = _require_fasttext()
        targets = np.asarray(targets)
        if not np.isin(targets, (0.0, 1.0)).all():
            raise DistillError("fastText learns labels only: use mode='top_share' (or the linear model to regress)")
        with tempfile.TemporaryDirectory(prefix="nag-distill-") as tmp:
            tmp_train = Path(tmp) / "train.txt"
            with open(tmp_train, "w", encoding="utf-8") as f:
                for text, y in zip(texts, targets):
                    label = FASTTEXT_LABEL if y == 1.0 else _NEGATIVE_LABEL
                    f.write(f"__label__{label} {one_line(text)}\n")
            # fastText's own determinism recipe (thread=1, a fixed seed) does not hold with the build installed here
            # (fasttext-numpy2-wheel 0.9.2, fastText's master branch): its initialisation fills the input matrix in
            # ten blocks, one per thread, so one thread leaves nine tenths of it as whatever the allocator returned;
            # runs then differ and some stop with "Encountered NaN". Ten threads initialise all of it; training is
            # then Hogwild-parallel, so runs still differ slightly (see the module docstring).
            try:
                self._model = fasttext.train_supervised(input=str(tmp_train), thread=_FASTTEXT_THREADS, seed=int(seed),
                                                        verbose=0, **self.params)
            except RuntimeError as e:
                raise DistillError(f"fastText training failed: {e} (try a lower lr, or the linear model)") from None
        return self

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        labels, probs = self._model.predict([one_line(t) for t in texts], k=2)
        want = f"__label__{FASTTEXT_LABEL}"
        out = np.zeros(len(labels), np.float32)
        for i, (lab, p) in enumerate(zip(labels, probs)):
            for name, value in zip(lab, p):
                if name == want:
                    out[i] = value
        return out

    def save(self, folder: Path) -> None:
        self._model.save_model(str(folder / self.files[0]))

    @classmethod
    def load(cls, folder: Path, params: dict[str, Any], state: dict[str, Any]) -> FastTextModel:
        fasttext = _require_fasttext()
        model = cls(**params)
        model._model = fasttext.load_model(str(folder / cls.files[0]))
        return model


class HashedLinearModel(DistilledModel):
    """Hashed features of the text, then a ridge regression on the standardised NAG score (the default rule for
    this model, ``mode="regress"``) or a logistic regression (``top_share`` labels); score = the linear value.

    Features, two blocks of ``n_features`` buckets each, every block scaled to unit length: word uni- and bigrams
    (scikit-learn's ``HashingVectorizer``) and, when ``char_max > 0``, byte n-grams of ``char_min`` to
    ``char_max`` bytes (:func:`~nag_datasets.distill.ngrams.char_ngram_counts`); ``sublinear_tf`` counts
    ``1 + log(count)``. Folders saved before character n-grams existed load with them off, as they were trained.
    """

    kind = "linear"
    files = ("weights.safetensors",)
    #: What a saved folder without these parameters was trained with (word n-grams only, raw counts).
    LEGACY_PARAMS: ClassVar[dict[str, Any]] = {"char_min": 0, "char_max": 0, "sublinear_tf": False}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.coef: np.ndarray | None = None
        self.intercept = 0.0
        self.regression_fit = False

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {"n_features": 1 << 18, "ngram_max": 2, "C": 10.0, "alpha": 0.3, "lowercase": True,
                "char_min": 3, "char_max": 5, "sublinear_tf": True}

    def _vectorizer(self) -> Any:
        text = _require_sklearn()
        return text.HashingVectorizer(n_features=int(self.params["n_features"]),
                                      ngram_range=(1, int(self.params["ngram_max"])),
                                      lowercase=bool(self.params["lowercase"]), alternate_sign=False, norm=None,
                                      dtype=np.float32)

    @property
    def num_features(self) -> int:
        """Length of the weight vector: one block of ``n_features``, two with character n-grams."""
        return int(self.params["n_features"]) * (2 if int(self.params["char_max"]) > 0 else 1)

    def _blocks(self, texts: Sequence[str]) -> list[Any]:
        """Each feature block as CSR counts (``1 + log`` with ``sublinear_tf``) and its rows' Euclidean norms."""
        from scipy import sparse

        from .ngrams import char_ngram_counts

        blocks = [self._vectorizer().transform(list(texts))]
        if int(self.params["char_max"]) > 0:
            blocks.append(char_ngram_counts(texts, n_min=int(self.params["char_min"]),
                                            n_max=int(self.params["char_max"]),
                                            n_features=int(self.params["n_features"])))
        out = []
        for block in blocks:
            block = sparse.csr_matrix(block, dtype=np.float32)
            if self.params["sublinear_tf"]:
                block.data = np.float32(1.0) + np.log(block.data, dtype=np.float32)
            squares = np.zeros(block.shape[0], np.float32)
            rows = np.flatnonzero(np.diff(block.indptr))
            if len(rows):
                squares[rows] = np.add.reduceat(block.data * block.data, block.indptr[rows])
            norms = np.sqrt(squares)
            norms[norms == 0] = 1.0
            out.append((block, norms))
        return out

    def features(self, texts: Sequence[str]) -> Any:
        """The ``(len(texts), num_features)`` CSR matrix the model is linear in (each block at unit length)."""
        from scipy import sparse

        scaled = [sparse.diags(np.float32(1.0) / norms, format="csr", dtype=np.float32) @ block
                  for block, norms in self._blocks(texts)]
        return scaled[0] if len(scaled) == 1 else sparse.hstack(scaled, format="csr", dtype=np.float32)

    def fit(self, texts: Sequence[str], targets: np.ndarray, seed: int) -> HashedLinearModel:
        _require_sklearn()
        from sklearn.linear_model import LogisticRegression, Ridge

        x = self.features(texts)
        targets = np.asarray(targets, dtype=np.float64)
        self.regression_fit = not np.isin(targets, (0.0, 1.0)).all()
        if self.regression_fit:
            z = (targets - targets.mean()) / (targets.std() or 1.0)
            model = Ridge(alpha=float(self.params["alpha"]), random_state=seed).fit(x, z)
            coef, intercept = model.coef_, float(model.intercept_)
        else:
            model = LogisticRegression(C=float(self.params["C"]), max_iter=2000, random_state=seed).fit(x, targets)
            coef, intercept = model.coef_[0], float(model.intercept_[0])
        self.coef = np.ascontiguousarray(coef, dtype=np.float32)
        self.intercept = intercept
        return self

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        # Block by block, dividing each product by the block's norms: the same value as ``features(texts) @ coef``
        # without building the scaled, stacked matrix.
        out = np.full(len(texts), np.float32(self.intercept), dtype=np.float32)
        width = int(self.params["n_features"])
        for b, (block, norms) in enumerate(self._blocks(texts)):
            out += np.asarray(block @ self.coef[b * width:(b + 1) * width], dtype=np.float32) / norms
        return out

    def state(self) -> dict[str, Any]:
        import sklearn

        return {"intercept": self.intercept, "regression": self.regression_fit, "sklearn_version": sklearn.__version__}

    def save(self, folder: Path) -> None:
        from safetensors.numpy import save_file

        save_file({"coef": self.coef}, str(folder / self.files[0]))

    @classmethod
    def load(cls, folder: Path, params: dict[str, Any], state: dict[str, Any]) -> HashedLinearModel:
        from safetensors.numpy import load_file

        model = cls(**{**cls.LEGACY_PARAMS, **params})
        coef = load_file(str(folder / cls.files[0]))["coef"]
        if coef.shape != (model.num_features,):
            raise DistillError(f"{folder / cls.files[0]} holds {coef.shape} weights, not ({model.num_features},)")
        model.coef, model.intercept = coef, float(state["intercept"])
        model.regression_fit = bool(state.get("regression", False))
        return model


def default_rule_mode(kind: str) -> str:
    """The labelling mode a model learns from when no rule is given: the linear model regresses the score (it
    agreed best with the exact ranking on held-out rows, see ``benchmarks/results/distill``); fastText learns
    labels only.

    >>> default_rule_mode("linear"), default_rule_mode("fasttext")
    ('regress', 'top_share')
    """
    return "regress" if model_class(kind).kind == "linear" else "top_share"


MODEL_KINDS: dict[str, type[DistilledModel]] = {"fasttext": FastTextModel, "linear": HashedLinearModel}


def model_class(kind: str) -> type[DistilledModel]:
    """The model class of ``kind`` (``"fasttext"`` or ``"linear"``)."""
    if kind not in MODEL_KINDS:
        raise DistillError(f"unknown distilled model {kind!r}; choose from {sorted(MODEL_KINDS)}")
    return MODEL_KINDS[kind]
