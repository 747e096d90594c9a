"""`NAGFeaturizer`: a `Dataset.map`-compatible callable that attaches NAG signatures as typed columns.

>>> from datasets import Dataset
>>> ds = Dataset.from_dict({"text": ["Water boils at 100 degrees Celsius.", "   "]})
>>> featurizer = NAGFeaturizer(top_k=20)               # bundled SmolLM2-135M, fwd_up, all 30 layers
>>> out, report = featurizer.apply(ds, return_report=True)
>>> out.features["nag_fwd_up"].length, out["nag_status"]
(30, ['ok', 'whitespace'])
>>> report.null_rows
1
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InvalidArgumentError, MissingColumnError, NAGError, WrongTypeError, argument
from ..signatures.columns import column_name, signature_feature
from ..signatures.embedding_column import EMBEDDING_COLUMN, embedding_feature
from ..signatures.embedding_spec import EmbeddingSpec
from ..signatures.registry import register_spec
from ..signatures.spec import NEURON_TYPES, SignatureSpec
from ..signatures.spec_column import SPEC_COLUMN, spec_value
from .batching import length_sorted_batches
from .models import hidden_size, library_version
from .progress import advance, progress
from .report import FeaturizeReport, invalid_reason, preview


class WorkerSetupError(NAGError, RuntimeError):
    """The featurizer cannot run in this worker process (a loaded model in ``num_proc`` workers, CUDA after fork)."""


class InvalidTextError(NAGError, ValueError):
    """A row's text is None or not a string (with ``on_invalid="error"``); ``row`` is its row number when known."""

    def __init__(self, message: str, row: int | None = None) -> None:
        super().__init__(message)
        self.row = row


class NAGFeaturizer:
    """Computes NAG signatures of a text column; pass it to ``ds.map(..., batched=True)`` or use :meth:`apply`.

    Holds configuration only: the model is loaded lazily once per process and is neither pickled nor hashed
    by `datasets`' fingerprinting, so ``num_proc`` workers each load their own copy and reruns hit the cache.

    Parameters:
        model: None for the bundled SmolLM2-135M, a local folder or Hub id, or a loaded model (then pass
            ``tokenizer`` too; loaded objects cannot travel to ``num_proc`` workers).
        neuron_types: any of ``fwd_up`` (default), ``fwd_down``, ``att_q``, ``att_k``, ``att_v``, ``att_o``.
        top_k: neurons kept per layer. max_length: tokens kept per document (the first ones).
        layers: layer indices, ``"last"`` or None for all. The forward pass stops after the last one.
        embedding: None (default), ``"last"``, ``"mid"`` or a layer index: also add ``nag_embedding``, the masked
            mean over valid tokens of that decoder layer's output after the model's final norm (float16
            ``(hidden,)``, from the same forward pass; it then stops after the later of that layer and the
            signatures' last). Profiles use it for the embedding and hybrid signals.
        batch_size: documents per forward pass (rows are sorted by length inside each map batch).
        dtype, device: default fp32 on CPU, bf16 on CUDA; ``device=None`` picks ``cuda:(rank % n)`` per
            worker when GPUs exist, else CPU.
        on_invalid: ``"error"`` (default) raises on None or non-string texts; ``"null"`` records them as null rows.
        num_workers: the ``num_proc`` you pass to map, used to split CPU threads among workers.
    """

    def __init__(
        self,
        model: Any = None,
        *,
        tokenizer: Any = None,
        neuron_types: str | Sequence[str] = ("fwd_up",),
        top_k: int = 20,
        max_length: int = 120,
        layers: Sequence[int] | str | None = None,
        text_column: str = "text",
        batch_size: int = 16,
        dtype: str | None = None,
        device: str | None = None,
        add_special_tokens: bool = False,
        attn_implementation: str | None = None,
        on_invalid: str = "error",
        num_workers: int | None = None,
        torch_threads: int | None = None,
        trust_remote_code: bool = False,
        revision: str | None = None,
        embedding: str | int | None = None,
    ) -> None:
        from .pooling import check_embedding_choice

        if isinstance(neuron_types, str):
            neuron_types = (neuron_types,)  # one type, not its characters
        unknown = [t for t in neuron_types if t not in NEURON_TYPES]
        if unknown or not neuron_types:
            raise InvalidArgumentError(f"unknown neuron type(s) {unknown or list(neuron_types)}; known: "
                                       f"{', '.join(NEURON_TYPES)}")
        if top_k < 1:
            raise InvalidArgumentError(f"{argument('top_k')} must be >= 1")
        if max_length < 1:
            raise InvalidArgumentError(f"{argument('max_length')} must be >= 1")
        if batch_size < 1:
            raise InvalidArgumentError(f"{argument('batch_size')} must be >= 1")
        if on_invalid not in ("error", "null"):
            raise InvalidArgumentError("on_invalid must be 'error' or 'null'")
        if isinstance(model, (str, os.PathLike)) or model is None:
            if tokenizer is not None:
                raise InvalidArgumentError("tokenizer= goes with a loaded model object; a model name or path (or the "
                                           "bundled model) brings its own tokenizer, which is the one the spec records")
            self.model_source: str | None = None if model is None else os.fspath(model)
            self._objects: tuple[Any, Any] | None = None
        else:
            if tokenizer is None:
                raise InvalidArgumentError("a loaded model needs its tokenizer: NAGFeaturizer(model, "
                                           "tokenizer=tokenizer)")
            if revision is not None or trust_remote_code:
                raise InvalidArgumentError("revision= and trust_remote_code= choose what to download; a loaded model "
                                           "object is used as it is")
            self.model_source = None
            self._objects = (model, tokenizer)
        self.neuron_types = tuple(dict.fromkeys(neuron_types))
        self.top_k = int(top_k)
        self.max_length = int(max_length)
        self.layers = layers if layers is None or isinstance(layers, str) else tuple(int(i) for i in layers)
        self.text_column = text_column
        self.batch_size = int(batch_size)
        self.dtype = dtype
        self.device = device
        self.add_special_tokens = bool(add_special_tokens)
        self.attn_implementation = attn_implementation
        self.on_invalid = on_invalid
        self.num_workers = num_workers
        self.torch_threads = torch_threads
        self.trust_remote_code = trust_remote_code
        self.revision = revision
        self.embedding = check_embedding_choice(embedding)
        self._loaded: dict[str, Any] | None = None
        self._source_key: str | None = None

    # ----- pickling and fingerprinting: configuration only -----
    def __getstate__(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k not in ("_loaded", "_objects")}
        state["_source_key"] = self.source_key()
        state["_has_objects"] = self._objects is not None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        has_objects = state.pop("_has_objects", False)
        self.__dict__.update(state)
        self._loaded = None
        self._objects = None
        self._orphaned = has_objects

    def source_key(self) -> str:
        """A string that changes whenever the model's weights change (used in cache fingerprints)."""
        if self._source_key is None:
            from pathlib import Path

            from .models import _cached_sha256, _folder_fingerprint, bundled_gguf_path, model_fingerprint

            if self._objects is not None:
                self._source_key = model_fingerprint(self._objects[0])
            elif self.model_source is None:
                self._source_key = "gguf-sha256:" + _cached_sha256(bundled_gguf_path())
            elif Path(self.model_source).is_dir():
                self._source_key = _folder_fingerprint(Path(self.model_source))
            else:
                self._source_key = f"hub:{self.model_source}@{self.revision or 'default'}"
        return self._source_key

    @property
    def tokenizer(self) -> Any:
        """The tokenizer this featurizer uses (loads the model in this process if needed), e.g. for
        :func:`nag_datasets.count_tokens`. Calling it with padding or truncation does not change the spec."""
        return self._ensure_loaded()["tokenizer"]

    # ----- lazy model -----
    def _pick_device(self, rank: int | None) -> str:
        import torch

        if self.device is not None:
            return self.device
        if torch.cuda.is_available():
            return f"cuda:{(rank or 0) % torch.cuda.device_count()}"
        return "cpu"

    def _ensure_loaded(self, rank: int | None = None) -> dict[str, Any]:
        if self._loaded is not None:
            return self._loaded
        import torch

        from .impact import ImpactRecorder
        from .models import load_model

        if getattr(self, "_orphaned", False):
            raise WorkerSetupError(
                "this NAGFeaturizer was built from a loaded model object, which cannot be sent to worker processes "
                "(num_proc > 1): build it from a model name or path instead, e.g. NAGFeaturizer('path/to/model')"
            )
        device = self._pick_device(rank)
        if device.startswith("cuda") and rank is not None:
            import multiprocess

            if multiprocess.get_start_method(allow_none=True) == "fork":
                raise WorkerSetupError(
                    "CUDA cannot be used in forked datasets workers. Before calling map, run once: "
                    "`import multiprocess; multiprocess.set_start_method('spawn', force=True)`"
                )
        if rank is not None and device == "cpu":
            workers = self.num_workers or 2
            torch.set_num_threads(self.torch_threads or max(1, (os.cpu_count() or 1) // workers))
        elif self.torch_threads:
            torch.set_num_threads(self.torch_threads)
        if self._objects is not None:
            model, tokenizer = self._objects
        else:
            model, tokenizer = load_model(self.model_source, dtype=self.dtype, device=device,
                                          attn_implementation=self.attn_implementation,
                                          trust_remote_code=self.trust_remote_code, revision=self.revision)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        pooler = None
        if self.embedding is not None:
            from .pooling import LayerPooler

            pooler = LayerPooler(model, self.embedding)  # type: ignore[arg-type]
        recorder = ImpactRecorder(model, self.neuron_types, None if self.layers is None else
                                  _layer_list(self.layers, model), stop_after=None if pooler is None else pooler.layer)
        for t in self.neuron_types:
            n = recorder.neurons_per_layer(t)
            if self.top_k > n:
                recorder.close()
                if pooler is not None:
                    pooler.close()
                raise InvalidArgumentError(f"top_k={self.top_k} is larger than the {n} {t} neurons per layer of "
                                           "this model")
        self._loaded = {"model": model, "tokenizer": tokenizer, "recorder": recorder, "pooler": pooler,
                        "device": next(model.parameters()).device}
        return self._loaded

    # ----- spec and features -----
    def spec(self, neuron_type: str | None = None) -> SignatureSpec:
        """The signature spec of one neuron type's column (loads the model in this process if needed)."""
        from .models import attention_implementation, model_name, tokenizer_fingerprint

        t = neuron_type or self.neuron_types[0]
        if t not in self.neuron_types:
            raise InvalidArgumentError(f"this featurizer computes {self.neuron_types}, not {t!r}")
        st = self._ensure_loaded()
        model, rec = st["model"], st["recorder"]
        spec = SignatureSpec(
            model_fingerprint=self.source_key(),
            tokenizer_fingerprint=tokenizer_fingerprint(st["tokenizer"]),
            neuron_type=t, top_k=self.top_k, layers=rec.layers, max_length=self.max_length,
            add_special_tokens=self.add_special_tokens, neurons_per_layer=rec.neurons_per_layer(t),
            model_name=model_name(model), dtype=str(next(model.parameters()).dtype).replace("torch.", ""),
            attn_implementation=attention_implementation(model),
            library_version=library_version(),
        )
        register_spec(spec)  # so a refusal of a plain-map column can name the differing fields
        return spec

    def embedding_spec(self) -> EmbeddingSpec:
        """The spec of the ``nag_embedding`` column (loads the model in this process if needed); refused when the
        featurizer was made without ``embedding=``."""
        from .models import attention_implementation, model_name, tokenizer_fingerprint

        if self.embedding is None:
            raise InvalidArgumentError("this featurizer computes no embedding: pass NAGFeaturizer(..., "
                                       "embedding='last')")
        st = self._ensure_loaded()
        model = st["model"]
        spec = EmbeddingSpec(
            model_fingerprint=self.source_key(), tokenizer_fingerprint=tokenizer_fingerprint(st["tokenizer"]),
            layer=st["pooler"].layer, max_length=self.max_length, add_special_tokens=self.add_special_tokens,
            hidden_size=hidden_size(model), layer_name=str(self.embedding), model_name=model_name(model),
            model_dtype=str(next(model.parameters()).dtype).replace("torch.", ""),
            attn_implementation=attention_implementation(model), library_version=library_version(),
        )
        register_spec(spec)
        return spec

    def column_specs(self) -> dict[str, Any]:
        """``{column: spec}`` of every column this featurizer writes that carries a spec (signatures, embedding)."""
        specs: dict[str, Any] = {column_name(t): self.spec(t) for t in self.neuron_types}
        if self.embedding is not None:
            specs[EMBEDDING_COLUMN] = self.embedding_spec()
        return specs

    def output_features(self, input_features: Any = None) -> Any:
        """``input_features`` plus the typed output columns (signature specs embedded)."""
        from datasets import Features, Value

        feats = Features(dict(input_features or {}))
        for t in self.neuron_types:
            feats[column_name(t)] = signature_feature(self.spec(t))
        if self.embedding is not None:
            feats[EMBEDDING_COLUMN] = embedding_feature(self.embedding_spec())
        feats["nag_tokens"] = Value("int32")
        feats["nag_status"] = Value("string")
        feats[SPEC_COLUMN] = Value("string")
        return feats

    def apply(self, ds: Any, *, return_report: bool = False, fresh: bool = False, **map_kwargs: Any) -> Any:
        """``ds.map(self, batched=True, features=...)`` with the exact output features; extra kwargs go to map.

        With ``return_report=True`` returns ``(dataset, FeaturizeReport)``. ``num_proc=N`` runs N worker processes,
        each on a contiguous shard (rank ``None`` when ``num_proc`` is 1 or None). `datasets` reuses an existing
        cache with the shard count it was written with, whatever ``num_proc`` says now; ``fresh=True`` passes a
        ``new_fingerprint`` derived from the normal inputs plus ``num_proc``, so each worker count has its own cache.
        """
        from datasets import Dataset

        from ..signatures.spec_column import refuse_split_dict

        refuse_split_dict(ds, "NAGFeaturizer.apply")
        if fresh and "new_fingerprint" in map_kwargs:
            raise InvalidArgumentError("pass either fresh=True (a fingerprint derived from num_proc) or "
                                       "new_fingerprint=, not both")
        if self.text_column not in (ds.column_names or []):
            raise MissingColumnError(f"text column {self.text_column!r} not found; columns: {ds.column_names}")
        map_kwargs.setdefault("batch_size", max(self.batch_size * 8, 64))
        if map_kwargs.get("num_proc") and map_kwargs["num_proc"] > 1:
            map_kwargs.setdefault("with_rank", True)
            if self.num_workers is None:
                self.num_workers = map_kwargs["num_proc"]
        features = self.output_features(ds.features)
        if isinstance(ds, Dataset) and len(ds) == 0:
            # `map` returns a 0-row dataset unchanged; give it the output columns and their features.
            out = Dataset.from_dict({name: [] for name in features}, features=features)
            return (out, FeaturizeReport.from_dataset(out)) if return_report else out
        map_kwargs.setdefault("with_indices", True)  # errors then name the dataset row, not the batch position
        if fresh:
            from datasets.fingerprint import Hasher

            kwargs = {k: v for k, v in sorted(map_kwargs.items()) if k != "num_proc"}
            map_kwargs["new_fingerprint"] = Hasher.hash(
                ["nag_datasets.apply", getattr(ds, "_fingerprint", None), Hasher.hash(self), features.to_dict(),
                 kwargs, "num_proc", map_kwargs.get("num_proc") or 1])
        with progress(ds, map_kwargs):  # a bar over documents, moved after every forward batch
            out = ds.map(self, batched=True, features=features, **map_kwargs)
        if return_report:
            return out, FeaturizeReport.from_dataset(out)
        return out

    # ----- the map function -----
    def __call__(self, batch: dict[str, list[Any]], *args: Any) -> dict[str, list[Any]]:
        indices, rank = _split_args(args)
        if self.text_column not in batch:
            raise MissingColumnError(f"text column {self.text_column!r} not found; columns: {list(batch)}")
        texts = batch[self.text_column]
        if not isinstance(texts, (list, tuple, np.ndarray)) and not hasattr(texts, "to_pylist"):
            raise WrongTypeError(
                f"NAGFeaturizer got one row, not a batch (text column {self.text_column!r} holds a "
                f"{type(texts).__name__}, not a list of texts): call ds.map(featurizer, batched=True) or "
                "featurizer.apply(ds)")
        texts = texts.to_pylist() if hasattr(texts, "to_pylist") else list(texts)
        st = self._ensure_loaded(rank)
        n = len(texts)
        status: list[str] = ["ok"] * n
        ids: list[list[int] | None] = [None] * n
        for i, text in enumerate(texts):
            reason = invalid_reason(text)
            if reason in ("none", "not_string"):
                if self.on_invalid == "error":
                    where = f"row {indices[i]}" if indices is not None else f"position {i} of the batch"
                    hint = "" if indices is not None else " (map with with_indices=True to get the row number)"
                    fix = argument("on_invalid='null'")
                    raise InvalidTextError(
                        f"text column {self.text_column!r} at {where} is "
                        f"{'None' if text is None else type(text).__name__}"
                        f" ({preview(text)}){hint}; pass {fix} to record such rows as null signatures",
                        row=None if indices is None else int(indices[i]))
                status[i] = reason
            elif reason is not None:
                status[i] = reason
        todo = [i for i in range(n) if status[i] == "ok"]
        for i, (tok_ids, truncated) in zip(todo, self._tokenize([texts[i] for i in todo], st["tokenizer"])):
            if not tok_ids:
                status[i] = "zero_tokens"
            else:
                ids[i] = tok_ids
                if truncated:
                    status[i] = "truncated"
        out: dict[str, list[Any]] = {column_name(t): [None] * n for t in self.neuron_types}
        if self.embedding is not None:
            out[EMBEDDING_COLUMN] = [None] * n
        live = [i for i in range(n) if ids[i] is not None]
        pad = st["tokenizer"].pad_token_id
        for chunk, input_ids, mask in length_sorted_batches([ids[i] for i in live], self.batch_size, pad):  # type: ignore[misc]
            sigs = self._signatures(input_ids, mask, st)
            for name, arr in sigs.items():
                col = out[name]
                for j, c in enumerate(chunk):
                    col[live[c]] = arr[j]
            advance(len(chunk))
        advance(n - len(live))  # rows without a forward pass (null, empty)
        out["nag_tokens"] = [len(x) if x is not None else 0 for x in ids]
        out["nag_status"] = status
        if "spec_value" not in st:
            st["spec_value"] = spec_value(self.column_specs())
        out[SPEC_COLUMN] = [st["spec_value"]] * n
        return out

    def _tokenize(self, texts: list[str], tokenizer: Any) -> list[tuple[list[int], bool]]:
        """First ``max_length`` token ids of each text and whether it had more, with bounded work per text."""
        from .textcut import first_token_ids

        return [first_token_ids(t, tokenizer, self.max_length, self.add_special_tokens) for t in texts]

    def _signatures(self, input_ids: Any, mask: Any, st: dict[str, Any]) -> dict[str, np.ndarray]:
        """``{column: array}`` of one forward pass: each signature column, and the embedding when asked."""
        import contextlib

        dev = st["device"]
        mask = mask.to(dev)
        pooler = st["pooler"]
        with pooler.recording(mask) if pooler is not None else contextlib.nullcontext():
            sigs = st["recorder"].signatures(input_ids.to(dev), mask, self.top_k)
        out = {}
        for t, s in sigs.items():
            dtype = np.uint16 if st["recorder"].neurons_per_layer(t) <= 65536 else np.uint32
            out[column_name(t)] = s.cpu().numpy().astype(dtype)
        if pooler is not None:
            out[EMBEDDING_COLUMN] = pooler.result().cpu().numpy().astype(np.float16)
        return out


def _layer_list(layers: Sequence[int] | str, model: Any) -> list[int]:
    from .sites import decoder_layers, normalize_layers

    return list(normalize_layers(layers, len(decoder_layers(model)[1])))


def _split_args(args: tuple[Any, ...]) -> tuple[list[int] | None, int | None]:
    """Tell apart ``(indices)``, ``(rank)`` and ``(indices, rank)`` as `datasets` passes them."""
    if len(args) == 2:
        return list(args[0]), args[1]
    if len(args) == 1:
        a = args[0]
        if a is None or isinstance(a, (int, np.integer)):
            return None, a
        return list(a), None
    if not args:
        return None, None
    raise WrongTypeError(f"unexpected extra arguments from map: {args!r}")
