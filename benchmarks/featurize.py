"""Featurizer throughput on CPU: plain LM forward vs base model vs ImpactRecorder vs NAGFeaturizer end to end.

Every model-level variant runs over the SAME right-padded token batches (length-sorted like the featurizer
does), cells are interleaved (order reversed on every other repeat) and the median of ``--repeats`` passes is
reported. Tokens/s counts real (unpadded) tokens.

    python benchmarks/featurize.py                 # defaults: 64 docs, max_length 120, batch sizes 1,8,16
    python benchmarks/featurize.py --quick         # smoke test (seconds)
    python benchmarks/featurize.py --profile       # also: torch.profiler of base vs recorder on one batch
    python benchmarks/featurize.py --embedding-overhead   # only: the featurizer with and without embedding="last"

Results go to ``benchmarks/results/featurize.json`` (with machine info); ``--embedding-overhead`` writes
``benchmarks/results/featurize_embedding.json``: the same featurizer (all layers, fwd_up, K=20) with and without the
``nag_embedding`` column, as map batches of ``batch_size`` length-sorted documents interleaved one by one, so load
bursts from other processes hit both alike. Other processes on the machine add
noise: the load average before and after is printed and saved.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this folder is sys.path[0]: a sibling named like a stdlib module (e.g. select.py) would
# shadow it for torch's imports. Move the folder to the end of the path, where only nag_research is looked up.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE] + [str(_HERE)]

import argparse
import os
import random
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from nag_research.provenance import save_results

from nag_datasets.featurize.batching import length_sorted_batches
from nag_datasets.featurize.featurizer import NAGFeaturizer
from nag_datasets.featurize.impact import ImpactRecorder, base_model
from nag_datasets.featurize.models import load_model
from nag_datasets.featurize.textcut import first_token_ids
from nag_datasets.signatures.spec import NEURON_TYPES

TOP_K = 20
GOAL_VS_LM = 1.15
GOAL_VS_BASE = 0.95
#: The embedding column may cost at most this share of the featurizer's time (issue 23).
GOAL_EMBEDDING_OVERHEAD = 0.05

_SENTENCES = [
    "The committee reviewed the annual budget and postponed the vote until the spring meeting.",
    "Water boils at one hundred degrees Celsius at sea level, but at lower temperatures on mountains.",
    "She wrote a short function that parses the configuration file and returns a dictionary of settings.",
    "Farmers in the valley planted wheat early this year because the winter had been unusually mild.",
    "The theorem follows from the previous lemma by induction on the number of vertices in the graph.",
]


# ----------------------------------------------------------------------------------------------- data
def load_texts(n_docs: int, seed: int) -> tuple[list[str], str]:
    """``n_docs`` real-looking texts (shuffled with ``seed``, repeated if needed) and where they came from."""
    texts: list[str] = []
    source = ""
    try:
        from nag_datasets.demo_data import load_demo

        texts = [t for t in load_demo()["text"] if isinstance(t, str) and t.strip()]
        source = "nag_datasets.demo_data.load_demo()"
    except Exception:  # noqa: BLE001 - fall through to the next source
        texts = []
    if not texts:
        try:
            import pyarrow.parquet as pq

            for p in sorted(Path("/work/shared/reference/official_demo").glob("*.parquet")):
                texts += [t for t in pq.read_table(p, columns=["doc"]).column("doc").to_pylist() if t]
            source = "/work/shared/reference/official_demo/*.parquet (doc)"
        except Exception:  # noqa: BLE001
            texts = []
    if not texts:
        rng = random.Random(seed)
        texts = [" ".join(rng.choice(_SENTENCES) for _ in range(rng.randint(1, 8))) for _ in range(max(n_docs, 1))]
        source = "synthetic sentences"
    random.Random(seed).shuffle(texts)
    while len(texts) < n_docs:
        texts = texts + texts
    return texts[:n_docs], source


def make_batches(id_lists: Sequence[list[int]], batch_size: int, pad_id: int,
                 sort: bool = True) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Right-padded ``(input_ids, attention_mask)`` batches, length-sorted like the featurizer when ``sort``."""
    return [(ids, mask) for _, ids, mask in length_sorted_batches(id_lists, batch_size, pad_id, sort=sort)]


def padded_tokens(batches: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> int:
    return sum(int(ids.numel()) for ids, _ in batches)


# ----------------------------------------------------------------------------------------------- cells
class Cell:
    """One measured variant made of work units: per unit ``setup()`` (untimed), unit (timed), ``teardown()``.

    Units of all cells are interleaved (round robin), so slow drift and bursts of load from other processes hit
    every variant alike; a cell's time for one repeat is the sum of its units' times.
    """

    def __init__(self, name: str, batch_size: int, units: list[Callable[[], None]],
                 setup: Callable[[], None] | None = None, teardown: Callable[[], None] | None = None) -> None:
        self.name, self.batch_size, self.units = name, batch_size, units
        self._setup, self._teardown = setup, teardown
        self.times: list[float] = []
        self.unit_times: list[float] = []  # every timed unit, in run order (unit i of repeat r at r * len + i)
        self._acc = 0.0

    def run_unit(self, i: int) -> None:
        if self._setup:
            self._setup()
        try:
            t0 = time.perf_counter()
            self.units[i]()
            elapsed = time.perf_counter() - t0
            self._acc += elapsed
            self.unit_times.append(elapsed)
        finally:
            if self._teardown:
                self._teardown()

    def close_repeat(self) -> None:
        self.times.append(self._acc)
        self._acc = 0.0


def _groups(batches: list, per_group: int) -> list[list]:
    """Consecutive batches joined into units of ``per_group`` batches (same documents across batch sizes)."""
    return [batches[i:i + per_group] for i in range(0, len(batches), per_group)]


def lm_cell(model: Any, batches: list, bs: int, unit_docs: int) -> Cell:
    def unit(bl: list) -> Callable[[], None]:
        def run() -> None:
            with torch.inference_mode():
                for ids, mask in bl:
                    model(input_ids=ids, attention_mask=mask)  # plain causal-LM forward: logits at every position
        return run

    return Cell("lm_forward", bs, [unit(g) for g in _groups(batches, max(1, unit_docs // bs))])


def base_cell(model: Any, batches: list, bs: int, unit_docs: int) -> Cell:
    body = base_model(model)

    def unit(bl: list) -> Callable[[], None]:
        def run() -> None:
            with torch.inference_mode():
                for ids, mask in bl:
                    body(input_ids=ids, attention_mask=mask, use_cache=False)
        return run

    return Cell("base_forward", bs, [unit(g) for g in _groups(batches, max(1, unit_docs // bs))])


def recorder_cell(name: str, model: Any, batches: list, bs: int, unit_docs: int, types: Sequence[str],
                  layers: Sequence[int] | None) -> Cell:
    state: dict[str, ImpactRecorder] = {}

    def setup() -> None:  # hooks must not stay registered while other cells run
        state["rec"] = ImpactRecorder(model, types, layers)

    def teardown() -> None:
        state.pop("rec").close()

    def unit(bl: list) -> Callable[[], None]:
        def run() -> None:
            rec = state["rec"]
            for ids, mask in bl:
                rec.signatures(ids, mask, TOP_K)
        return run

    return Cell(name, bs, [unit(g) for g in _groups(batches, max(1, unit_docs // bs))], setup, teardown)


def featurizer_cell(name: str, model: Any, tokenizer: Any, texts: list[str], bs: int, max_length: int,
                    bucketed: bool, embedding: str | None = None, unit_docs: int | None = None) -> Cell:
    """``NAGFeaturizer.__call__`` on a batch dict (tokenization + length sorting + signatures).

    ``bucketed=True``: one map-batch with all documents (sorted by length inside). ``bucketed=False``: the same
    shuffled documents as map-batches of exactly ``bs`` rows, so each forward batch is a random length mix
    (sorting inside one forward batch changes nothing).
    """
    feat = NAGFeaturizer(model, tokenizer=tokenizer, top_k=TOP_K, max_length=max_length, batch_size=bs,
                         embedding=embedding)

    def setup() -> None:
        feat._ensure_loaded()

    def teardown() -> None:
        if feat._loaded is not None:
            feat._loaded["recorder"].close()
            if feat._loaded.get("pooler") is not None:
                feat._loaded["pooler"].close()
            feat._loaded = None

    def unit(tx: list[str]) -> Callable[[], None]:
        return lambda: feat({"text": tx}) and None

    step = unit_docs or (len(texts) if bucketed else bs)
    return Cell(name, bs, [unit(texts[i:i + step]) for i in range(0, len(texts), step)], setup, teardown)


def run_interleaved(cells: list[Cell], repeats: int, t_start: float) -> None:
    """Warm every cell on its first unit, then ``repeats`` rounds of round-robin units (order flipped each round)."""
    for c in cells:
        c.run_unit(0)
        c._acc = 0.0
        c.unit_times.clear()
    rounds = max(len(c.units) for c in cells)
    for r in range(repeats):
        order = cells if r % 2 == 0 else cells[::-1]
        for i in range(rounds):
            for c in order:
                if i < len(c.units):
                    c.run_unit(i)
        for c in cells:
            c.close_repeat()
        print(f"# repeat {r + 1}/{repeats} done ({time.perf_counter() - t_start:.0f} s, "
              f"load {os.getloadavg()[0]:.2f})", flush=True)


# ----------------------------------------------------------------------------------------------- profile
def profile(model: Any, batch: tuple[torch.Tensor, torch.Tensor], rows: int = 15) -> str:
    """torch.profiler tables (sorted by self CPU time) of the base forward and of the recorder on one batch."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as tprofile

    ids, mask = batch
    body = base_model(model)
    out = []

    def one(label: str, fn: Callable[[], Any]) -> None:
        with torch.inference_mode():
            fn()  # warm
            with tprofile(activities=[ProfilerActivity.CPU]) as prof:
                fn()
        out.append(f"--- {label} (batch {tuple(ids.shape)})\n"
                   + prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))

    one("base_forward", lambda: body(input_ids=ids, attention_mask=mask, use_cache=False))
    with ImpactRecorder(model, ["fwd_up"]) as rec:
        one("recorder fwd_up all layers", lambda: rec.signatures(ids, mask, TOP_K))
    return "\n".join(out)


# ----------------------------------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--docs", type=int, default=64)
    p.add_argument("--max-length", type=int, default=120)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-sizes", default="1,8,16")
    p.add_argument("--prefix-layers", type=int, default=15, help="layers 0..N-1 for the early-stop variant")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="tiny smoke run (8 docs, 32 tokens, 1 repeat)")
    p.add_argument("--profile", action="store_true", help="print torch.profiler tables of base vs recorder")
    p.add_argument("--no-save", action="store_true")
    p.add_argument("--embedding-overhead", action="store_true",
                   help="only the featurizer with and without embedding='last' (128 docs, 7 repeats by default)")
    args = p.parse_args(argv)
    if args.embedding_overhead:
        return embedding_overhead(args)
    if args.quick:
        args.docs, args.max_length, args.repeats, args.batch_sizes = 8, 32, 1, "1,4"
    batch_sizes = sorted({int(b) for b in args.batch_sizes.split(",") if b.strip()})
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    t_start = time.perf_counter()

    model, tokenizer = load_model()  # bundled SmolLM2-135M, fp32, CPU
    n_layers = model.config.num_hidden_layers
    texts, text_source = load_texts(args.docs, args.seed)
    id_lists = [first_token_ids(t, tokenizer, args.max_length)[0] for t in texts]
    keep = [i for i, x in enumerate(id_lists) if x]
    texts, id_lists = [texts[i] for i in keep], [id_lists[i] for i in keep]
    n_docs, n_tokens = len(id_lists), sum(len(x) for x in id_lists)
    pad_id = tokenizer.pad_token_id
    big = max(batch_sizes)
    prefix = list(range(min(args.prefix_layers, n_layers)))

    cells: list[Cell] = []
    batches_by_bs = {bs: make_batches(id_lists, bs, pad_id) for bs in batch_sizes}
    for bs in batch_sizes:
        b = batches_by_bs[bs]
        cells += [lm_cell(model, b, bs, big), base_cell(model, b, bs, big),
                  recorder_cell("recorder_fwd_up_all", model, b, bs, big, ["fwd_up"], None)]
    b = batches_by_bs[big]
    cells += [recorder_cell("recorder_6types_all", model, b, big, big, list(NEURON_TYPES), None),
              recorder_cell(f"recorder_fwd_up_L0-{prefix[-1]}", model, b, big, big, ["fwd_up"], prefix),
              featurizer_cell("featurizer_bucketed", model, tokenizer, texts, big, args.max_length, True),
              featurizer_cell("featurizer_unsorted", model, tokenizer, texts, big, args.max_length, False)]
    unsorted_batches = make_batches(id_lists, big, pad_id, sort=False)
    pad_info = {"bucketed": padded_tokens(b), "unsorted": padded_tokens(unsorted_batches)}

    print(f"# {n_docs} docs, {n_tokens} tokens (mean {n_tokens / n_docs:.1f}, max_length {args.max_length}) "
          f"from {text_source}; torch threads {torch.get_num_threads()}, cpus {os.cpu_count()}", flush=True)
    if load_before[0] > (os.cpu_count() or 1) * 0.75:
        print(f"# WARNING: load average {load_before[0]:.2f} on {os.cpu_count()} cpus before starting: other "
              "processes compete for the cores; with several torch threads OpenMP barriers then stall badly "
              "(try --threads 1). Absolute figures are pessimistic; ratios within this run stay comparable.",
              flush=True)
    run_interleaved(cells, args.repeats, t_start)
    load_after = os.getloadavg()

    rows = []
    for c in cells:
        med = statistics.median(c.times)
        rows.append({"variant": c.name, "batch_size": c.batch_size, "median_s": med, "times_s": c.times,
                     "docs_per_s": n_docs / med, "tokens_per_s": n_tokens / med,
                     "spread": (max(c.times) - min(c.times)) / med if len(c.times) > 1 else 0.0})
    by = {(r["variant"], r["batch_size"]): r for r in rows}
    ratios = []
    for bs in batch_sizes:
        rec, lm, base = (by[(v, bs)]["tokens_per_s"] for v in ("recorder_fwd_up_all", "lm_forward", "base_forward"))
        ratios.append({"batch_size": bs, "recorder_vs_lm": rec / lm, "recorder_vs_base": rec / base,
                       "base_vs_lm": base / lm, "goal_vs_lm_met": rec / lm >= GOAL_VS_LM,
                       "goal_vs_base_met": rec / base >= GOAL_VS_BASE})

    print(f"\n{'variant':<26}{'bs':>4}{'median s':>10}{'docs/s':>9}{'tok/s':>9}{'spread':>8}")
    for r in rows:
        print(f"{r['variant']:<26}{r['batch_size']:>4}{r['median_s']:>10.2f}{r['docs_per_s']:>9.2f}"
              f"{r['tokens_per_s']:>9.0f}{r['spread']:>7.0%}")
    print(f"\n{'bs':>4}{'rec/lm':>9}{'(goal ' + str(GOAL_VS_LM) + ')':>12}{'rec/base':>10}"
          f"{'(goal ' + str(GOAL_VS_BASE) + ')':>12}{'base/lm':>9}")
    for q in ratios:
        print(f"{q['batch_size']:>4}{q['recorder_vs_lm']:>9.3f}{'ok' if q['goal_vs_lm_met'] else 'MISSED':>12}"
              f"{q['recorder_vs_base']:>10.3f}{'ok' if q['goal_vs_base_met'] else 'MISSED':>12}{q['base_vs_lm']:>9.3f}")
    full, pre = by[("recorder_fwd_up_all", big)], by[(f"recorder_fwd_up_L0-{prefix[-1]}", big)]
    six = by[("recorder_6types_all", big)]
    fb, fu = by[("featurizer_bucketed", big)], by[("featurizer_unsorted", big)]
    print(f"\nbs {big}: 6 types / fwd_up = {six['tokens_per_s'] / full['tokens_per_s']:.3f}x; "
          f"layers 0-{prefix[-1]} / all {n_layers} = {pre['tokens_per_s'] / full['tokens_per_s']:.2f}x faster; "
          f"featurizer bucketed / unsorted = {fb['tokens_per_s'] / fu['tokens_per_s']:.2f}x "
          f"(padded tokens {pad_info['bucketed']} vs {pad_info['unsorted']}, real {n_tokens}); "
          f"featurizer bucketed / recorder = {fb['tokens_per_s'] / full['tokens_per_s']:.3f}x")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} on {os.cpu_count()} cpus: "
          "other processes on this machine add noise; compare ratios within one run, not across runs.")

    prof_text = None
    if args.profile:
        prof_text = profile(model, batches_by_bs[big][len(batches_by_bs[big]) // 2])
        print("\n" + prof_text)

    payload = {
        "benchmark": "featurize",
        "params": {"docs": n_docs, "max_length": args.max_length, "repeats": args.repeats,
                   "batch_sizes": batch_sizes, "top_k": TOP_K, "prefix_layers": prefix, "seed": args.seed,
                   "quick": args.quick, "torch_threads": torch.get_num_threads(), "dtype": "float32",
                   "device": "cpu"},
        "model": {"name": "SmolLM2-135M-Instruct (bundled)", "layers": n_layers},
        "text_source": text_source, "real_tokens": n_tokens, "padded_tokens": pad_info,
        "notes": ("lm_forward = model(input_ids=, attention_mask=) with default kwargs (logits for every position); "
                  "base_forward = model.base_model(..., use_cache=False); recorder = ImpactRecorder.signatures "
                  f"(top_k {TOP_K}); cells interleaved, median of repeats; tokens/s counts unpadded tokens; "
                  "other processes on the machine add noise."),
        "load_avg_before": load_before, "load_avg_after": load_after,
        "results": rows, "ratios": ratios,
        "elapsed_s": time.perf_counter() - t_start,
    }
    if prof_text:
        payload["profile"] = prof_text
    if not args.no_save:
        path = save_results("featurize" + ("_quick" if args.quick else ""), payload)
        print(f"saved {path}")
    return payload


def embedding_overhead(args: argparse.Namespace) -> dict[str, Any]:
    """The featurizer's time with ``embedding="last"`` against the same featurizer without, in one interleaved run."""
    docs = args.docs if args.docs != 64 else 128
    repeats = args.repeats if args.repeats != 3 else 7
    if args.quick:
        docs, repeats, args.max_length = 16, 2, 32
    bs = max(int(b) for b in args.batch_sizes.split(",") if b.strip())
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    t_start = time.perf_counter()
    model, tokenizer = load_model()
    texts, text_source = load_texts(docs, args.seed)
    lengths = [len(first_token_ids(t, tokenizer, args.max_length)[0]) for t in texts]
    keep = sorted((i for i, n in enumerate(lengths) if n), key=lambda i: lengths[i])
    texts = [texts[i] for i in keep]  # length-sorted: each unit is one well-bucketed map batch of bs documents
    n_tokens = sum(lengths[i] for i in keep)
    cells = [featurizer_cell("featurizer", model, tokenizer, texts, bs, args.max_length, True, None, bs),
             featurizer_cell("featurizer_embedding_last", model, tokenizer, texts, bs, args.max_length, True, "last",
                             bs)]
    print(f"# embedding overhead: {len(texts)} docs, {n_tokens} tokens, max_length {args.max_length}, batch {bs}, "
          f"{repeats} repeats, torch threads {torch.get_num_threads()}, load {load_before[0]:.2f}", flush=True)
    run_interleaved(cells, repeats, t_start)
    load_after = os.getloadavg()
    base, emb = cells
    per_repeat = [e / b - 1.0 for b, e in zip(base.times, emb.times)]
    # The same unit (documents) of the two cells ran back to back: their ratio sees the same load.
    per_unit = [e / b - 1.0 for b, e in zip(base.unit_times, emb.unit_times)]
    overhead = statistics.median(per_unit)
    total_ratio = statistics.median(emb.times) / statistics.median(base.times) - 1.0
    rows = [{"variant": c.name, "batch_size": bs, "median_s": statistics.median(c.times), "times_s": c.times,
             "docs_per_s": len(texts) / statistics.median(c.times),
             "tokens_per_s": n_tokens / statistics.median(c.times)} for c in cells]
    for r in rows:
        print(f"{r['variant']:<28} median {r['median_s']:.2f} s  {r['tokens_per_s']:.0f} tok/s  times {r['times_s']}")
    quartiles = statistics.quantiles(per_unit, n=4)
    print(f"embedding overhead: {overhead:+.2%} (median of {len(per_unit)} paired unit ratios, quartiles "
          f"{quartiles[0]:+.2%} / {quartiles[2]:+.2%}; ratio of median totals {total_ratio:+.2%}; goal <= "
          f"{GOAL_EMBEDDING_OVERHEAD:.0%}); load {load_before[0]:.2f} -> {load_after[0]:.2f}")
    payload = {
        "benchmark": "featurize_embedding",
        "params": {"docs": len(texts), "max_length": args.max_length, "repeats": repeats, "batch_size": bs,
                   "top_k": TOP_K, "layers": "all", "neuron_types": ["fwd_up"], "embedding": "last",
                   "seed": args.seed, "quick": args.quick, "torch_threads": torch.get_num_threads(),
                   "dtype": "float32", "device": "cpu"},
        "text_source": text_source, "real_tokens": n_tokens,
        "notes": ("NAGFeaturizer.__call__ on map batches of batch_size length-sorted documents, without and with "
                  "embedding='last' (the last decoder layer's output after the final norm, masked mean, float16); "
                  "units of the two cells interleaved one by one, order flipped every repeat; overhead = median over "
                  "units of (time with / time without - 1), each pair run back to back; also the ratio of the "
                  "median repeat totals and the per-repeat ratios."),
        "results": rows, "overhead": overhead, "overhead_quartiles": [quartiles[0], quartiles[2]],
        "overhead_of_median_totals": total_ratio, "overhead_per_repeat": per_repeat, "overhead_per_unit": per_unit,
        "goal_max_overhead": GOAL_EMBEDDING_OVERHEAD, "goal_met": overhead <= GOAL_EMBEDDING_OVERHEAD,
        "load_avg_before": load_before, "load_avg_after": load_after, "elapsed_s": time.perf_counter() - t_start,
    }
    if not args.no_save:
        path = save_results("featurize_embedding" + ("_quick" if args.quick else ""), payload)
        print(f"saved {path}")
    return payload


if __name__ == "__main__":
    main()
