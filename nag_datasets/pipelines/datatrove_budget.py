"""A global token budget in datatrove, in the three-stage pattern of its MinHash deduplication.

1. :class:`NAGBudgetScores` (after :class:`~.datatrove_steps.NAGDocumentScorer`, N tasks) writes each task's
   ``(score, tokens, id hash)`` rows, in input order, to ``FOLDER/<rank>.nagscores``.
2. :class:`NAGBudgetCut` (1 task) concatenates the tasks' rows in rank order and cuts them with the library's
   exact budget code (:func:`nag_datasets.selection.budgeted.select_indices`, bisection in
   :mod:`nag_datasets.selection.budget`): best first, ties by position, stop at the first document that would
   overflow ``fraction`` of the pool's tokens. It writes each task's kept positions (``<rank>.nagkeep``) and the
   report (``selection.json``).
3. :class:`NAGBudgetFilter` (the same N tasks, the same reader) keeps those documents, checks that each is the
   one stage 1 scored (id hash), and writes the score, token count and place in the ranking
   (``nag_selection_rank``, 0 = best) into its metadata.

The kept rows are exactly ``select_top_fraction(ds, fraction, token_column=..., profile=...)`` where ``ds`` holds
the documents in rank order (task 0's, then task 1's, ...), each task's in the order its reader yields them.
Each stage is its own executor; datatrove's completion markers skip finished tasks when a run is repeated.

>>> import numpy as np
>>> from datatrove.data import Document
>>> from datatrove.executor import LocalPipelineExecutor
>>> from nag_datasets.pipelines import NAGDocumentScorer
>>> class Words:
...     def score_texts(self, texts):
...         return np.array([len(set(t.split())) for t in texts], dtype=np.float32)
...     def count_tokens(self, texts):
...         return [len(t.split()) for t in texts]
>>> docs = [Document(text=t, id=str(i)) for i, t in enumerate(["a b c", "a a a", "b c", "d"])]
>>> import tempfile; work = tempfile.mkdtemp()
>>> stage1 = [lambda data, rank, world_size: iter(docs[rank::world_size]), NAGDocumentScorer(Words()),
...           NAGBudgetScores(f"{work}/budget")]
>>> _ = LocalPipelineExecutor(stage1, tasks=2, workers=1, logging_dir=f"{work}/logs/1").run()
>>> _ = LocalPipelineExecutor([NAGBudgetCut(f"{work}/budget", 0.6)], logging_dir=f"{work}/logs/2").run()
>>> kept = []
>>> stage3 = [lambda data, rank, world_size: iter(docs[rank::world_size]), NAGBudgetFilter(f"{work}/budget"),
...           lambda data, rank, world_size: kept.extend(d.id for d in data)]
>>> _ = LocalPipelineExecutor(stage3, tasks=2, workers=1, logging_dir=f"{work}/logs/3").run()
>>> kept   # budget 0.6 * 9 tokens: "a b c" (3) and "b c" (2) fit, "a a a" (3 more) would overflow
['0', '2']
>>> import shutil; shutil.rmtree(work)
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from ..errors import InvalidArgumentError
from ._datatrove import PipelineStep, get_datafolder
from .budget_files import (
    KEEP_DTYPE,
    KEEP_FORMAT,
    SCORES_DTYPE,
    SCORES_FORMAT,
    SELECTION_FILE,
    BudgetStageError,
    id_hashes,
    keep_name,
    read_records,
    scores_name,
    scores_records,
    write_records,
)
from .datatrove_steps import SCORE_KEY, TOKENS_KEY, metadata_value

__all__ = ["RANK_KEY", "NAGBudgetCut", "NAGBudgetFilter", "NAGBudgetScores"]

#: ``doc.metadata`` key stage 3 writes: the document's place in the best-first ranking of the selection.
RANK_KEY = "nag_selection_rank"


class NAGBudgetScores(PipelineStep):
    """Stage 1: records each document's ``metadata[score_key]`` and ``metadata[tokens_key]`` and passes it on.

    At the end of the task it writes ``output_folder/<rank>.nagscores`` (any ``DataFolder``-like path: local,
    ``s3://``, ``hf://``). A document without a score (``None``) is outside the pool, as a null signature is.
    """

    name = "🧮 NAG budget: scores"
    type = "🔢 - SCORER"

    def __init__(self, output_folder: Any, *, score_key: str = SCORE_KEY, tokens_key: str = TOKENS_KEY) -> None:
        super().__init__()
        self.output_folder = get_datafolder(output_folder)
        self.score_key = score_key
        self.tokens_key = tokens_key

    def run(self, data: Any, rank: int = 0, world_size: int = 1) -> Any:
        scores: list[float] = []
        tokens: list[int] = []
        ids: list[str] = []
        for doc in data or ():
            score = metadata_value(doc, self.score_key, "NAGBudgetScores")
            count = metadata_value(doc, self.tokens_key, "NAGBudgetScores")
            scores.append(math.nan if score is None else float(score))
            tokens.append(int(count))
            ids.append(doc.id)
            yield doc
        rows = scores_records(scores, tokens, ids)
        write_records(
            self.output_folder, scores_name(rank), SCORES_FORMAT, {"rank": rank, "world_size": world_size}, rows
        )
        self.stat_update("documents", value=len(rows))


class NAGBudgetCut(PipelineStep):
    """Stage 2 (one task): the exact global cut at ``fraction`` of the pool's tokens over all tasks' scores.

    Reads ``input_folder/*.nagscores``, writes ``<rank>.nagkeep`` per task and ``selection.json`` (the
    :class:`~nag_datasets.selection.reports.SelectionReport` fields, plus ``world_size`` and ``task_documents``)
    to ``output_folder`` (default: the input folder). Pass ``profile`` to record it in the report.
    """

    name = "🧮 NAG budget: cut"
    type = "🔢 - SCORER"

    def __init__(self, input_folder: Any, fraction: float, *, output_folder: Any = None, profile: Any = None) -> None:
        super().__init__()
        if not 0.0 <= float(fraction) <= 1.0:
            raise InvalidArgumentError(f"fraction must be within [0, 1], got {fraction}")
        self.input_folder = get_datafolder(input_folder)
        self.output_folder = self.input_folder if output_folder is None else get_datafolder(output_folder)
        self.fraction = float(fraction)
        self.profile = profile

    def _read_tasks(self) -> list[np.ndarray]:
        names = self.input_folder.list_files(glob_pattern="*.nagscores", recursive=False)
        if not names:
            raise BudgetStageError(f"no *.nagscores files in {self.input_folder.path}: run stage 1 (NAGBudgetScores)")
        headers = {}
        for name in names:
            header, rows = read_records(self.input_folder, name, SCORES_FORMAT, SCORES_DTYPE)
            headers[int(header["rank"])] = (header, rows)
        world_sizes = {int(h["world_size"]) for h, _ in headers.values()}
        if len(world_sizes) != 1:
            raise BudgetStageError(f"{self.input_folder.path} mixes stage-1 runs with {sorted(world_sizes)} tasks")
        (world_size,) = world_sizes
        missing = sorted(set(range(world_size)) - set(headers))
        if missing:
            raise BudgetStageError(
                f"stage 1 ran with {world_size} tasks but {self.input_folder.path} lacks the scores "
                f"of tasks {missing}: rerun stage 1 (its completed tasks are skipped)"
            )
        return [headers[r][1] for r in range(world_size)]

    def run(self, data: Any = None, rank: int = 0, world_size: int = 1) -> Any:
        from ..selection.budgeted import select_indices

        if world_size != 1:
            raise InvalidArgumentError(f"NAGBudgetCut makes one global decision: run it with tasks=1, not {world_size}")
        if data:
            yield from data
        tasks = self._read_tasks()
        rows = np.concatenate(tasks) if tasks else np.zeros(0, SCORES_DTYPE)
        selected, report = select_indices(rows["score"], rows["tokens"], self.fraction, method="exact")
        offsets = np.cumsum([0] + [len(t) for t in tasks])
        order = np.arange(len(selected), dtype=np.int64)
        for r, task in enumerate(tasks):
            mine = (selected >= offsets[r]) & (selected < offsets[r + 1])
            keep = np.empty(int(mine.sum()), KEEP_DTYPE)
            keep["position"] = selected[mine] - offsets[r]
            keep["order"] = order[mine]
            keep = keep[np.argsort(keep["position"], kind="stable")]
            write_records(
                self.output_folder,
                keep_name(r),
                KEEP_FORMAT,
                {"rank": r, "world_size": len(tasks), "task_documents": len(task)},
                keep,
            )
        out = report.to_dict()
        if self.profile is not None:
            out.update(
                spec=self.profile.spec.to_dict(),
                profile_fingerprint=self.profile.fingerprint,
                profile_description=self.profile.description,
                profile_num_targets=self.profile.num_targets,
                score_kind=self.profile.score_kind,
                profile=self.profile.summary(),
            )
        out.update(world_size=len(tasks), task_documents=[len(t) for t in tasks])
        with self.output_folder.open(SELECTION_FILE, "w") as f:
            json.dump(out, f, indent=1)
        self.stat_update("documents", value=len(rows))
        self.stat_update("selected", value=len(selected))
        self.stat_update("tokens_selected", value=report.tokens_selected)


class NAGBudgetFilter(PipelineStep):
    """Stage 3: keeps the documents stage 2 chose for this task; run it on the same inputs, reader and task count
    as stage 1. Writes ``metadata[score_key]``, ``metadata[tokens_key]`` (the values the cut used) and
    ``metadata[RANK_KEY]``; refuses a document stream that differs from the one stage 1 scored."""

    name = "🧮 NAG budget: filter"
    type = "🔻 - FILTER"

    def __init__(
        self, input_folder: Any, *, score_key: str = SCORE_KEY, tokens_key: str = TOKENS_KEY, rank_key: str = RANK_KEY
    ) -> None:
        super().__init__()
        self.input_folder = get_datafolder(input_folder)
        self.score_key = score_key
        self.tokens_key = tokens_key
        self.rank_key = rank_key

    def run(self, data: Any, rank: int = 0, world_size: int = 1) -> Any:
        header, rows = read_records(self.input_folder, scores_name(rank), SCORES_FORMAT, SCORES_DTYPE)
        if int(header["world_size"]) != world_size:
            raise BudgetStageError(
                f"stage 1 ran with {header['world_size']} tasks, this stage with {world_size}: run "
                "both with the same tasks (and reader) so that each task reads the same documents"
            )
        _, keep = read_records(self.input_folder, keep_name(rank), KEEP_FORMAT, KEEP_DTYPE)
        kept = dict(zip(keep["position"].tolist(), keep["order"].tolist()))
        position = -1
        for position, doc in enumerate(data or ()):
            if position >= len(rows) or id_hashes([doc.id])[0] != rows["id_hash"][position]:
                raise BudgetStageError(
                    f"task {rank}: document {position} (id {doc.id!r}) is not the one stage 1 scored there "
                    f"({len(rows)} documents): stage 3 must read the same inputs in the same order as stage 1"
                )
            self.stat_update("total")
            if position not in kept:
                self.stat_update("dropped")
                continue
            score = float(rows["score"][position])
            doc.metadata[self.score_key] = score
            doc.metadata[self.tokens_key] = int(rows["tokens"][position])
            doc.metadata[self.rank_key] = kept[position]
            self.stat_update("forwarded")
            self.stat_update("tokens_selected", value=int(rows["tokens"][position]))
            yield doc
        if position + 1 != len(rows):
            raise BudgetStageError(
                f"task {rank} read {position + 1} documents, stage 1 scored {len(rows)}: stage 3 "
                "must read the same inputs as stage 1"
            )
