"""Target-retrieval tasks built from real offline text, where every class shares one surface format.

A task holds documents of several classes. For each class, a few documents are held out as the *target*; the
*pool* holds other documents of every class. Retrieving "the pool documents of the target's class" is then a
question of content, not format: MMLU questions of one domain among MMLU questions of other domains, or
dictionary entries of one field among entries of other fields.

Documents are cut to their first ``max_length`` tokens (at a token boundary) before any method sees them, so NAG,
the embedding baseline, TF-IDF and DSIR all score exactly the same text, and the token budget counts those tokens.

Sampling is deterministic: within a class, documents are ordered by ``sha256(f"{seed}:{id}")``; the first
``n_target`` are the target, the next ``n_pool`` go to the pool and, for the task's sensitivity class only, the
following ``n_extra`` are extra target documents (never in the pool) used to study how many targets are needed.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from nag_datasets.ordering import seeded_order

from ..corpora import strip_gcide_label

__all__ = ["GCIDE_FIELDS", "MMLU_DOMAINS", "RetrievalTask", "TaskConfig", "build_task", "cut_to_tokens"]

#: MMLU subjects grouped into content domains. Left out on purpose: ``moral_scenarios`` (one fixed two-scenario
#: template, so its format gives it away), ``miscellaneous`` and ``global_facts`` (no single domain).
MMLU_DOMAINS: dict[str, tuple[str, ...]] = {
    "mathematics": ("abstract_algebra", "college_mathematics", "elementary_mathematics", "high_school_mathematics",
                    "high_school_statistics"),
    "physical_sciences": ("astronomy", "college_chemistry", "college_physics", "conceptual_physics",
                          "high_school_chemistry", "high_school_physics", "electrical_engineering"),
    "biology_medicine": ("anatomy", "clinical_knowledge", "college_biology", "college_medicine",
                         "high_school_biology", "medical_genetics", "nutrition", "professional_medicine", "virology",
                         "human_aging"),
    "computing": ("college_computer_science", "high_school_computer_science", "computer_security",
                  "machine_learning"),
    "law_government": ("international_law", "jurisprudence", "professional_law",
                       "high_school_government_and_politics", "us_foreign_policy", "security_studies"),
    "economics_business": ("econometrics", "high_school_macroeconomics", "high_school_microeconomics",
                           "business_ethics", "management", "marketing", "professional_accounting",
                           "public_relations"),
    "philosophy_religion": ("philosophy", "moral_disputes", "world_religions", "logical_fallacies", "formal_logic"),
    "history": ("high_school_european_history", "high_school_us_history", "high_school_world_history", "prehistory"),
    "psychology_society": ("high_school_psychology", "professional_psychology", "sociology", "human_sexuality"),
}

#: GCIDE field labels usable as classes (as :func:`nag_research.corpora.gcide_entries` reports them).
GCIDE_FIELDS = ("Zool.", "Bot.", "Chem.", "Med.", "Anat.", "Law", "Min.", "Naut.", "Mus.", "Arch.")



@dataclasses.dataclass(frozen=True)
class TaskConfig:
    """Which task to build and how many documents per class go to the target and to the pool."""

    kind: str  # "mmlu_domains" or "gcide_fields"
    classes: tuple[str, ...]
    n_target: int
    n_pool: int
    sensitivity_class: str | None = None
    n_extra: int = 0
    min_chars: int = 40

    @property
    def name(self) -> str:
        return self.kind


@dataclasses.dataclass
class RetrievalTask:
    """Documents (already cut to ``max_length`` tokens) with their class and role (``target``/``pool``/``extra``)."""

    name: str
    description: str
    classes: tuple[str, ...]
    ids: list[str]
    texts: list[str]
    labels: list[str]
    roles: list[str]

    def __post_init__(self) -> None:
        n = len(self.ids)
        if not (len(self.texts) == len(self.labels) == len(self.roles) == n):
            raise ValueError("ids, texts, labels and roles must have equal lengths")

    @property
    def pool(self) -> np.ndarray:
        """Positions of the pool documents, in task order."""
        return np.flatnonzero(np.array(self.roles) == "pool")

    def targets(self, cls: str, *, with_extra: bool = False) -> np.ndarray:
        """Positions of the target documents of class ``cls`` (then its extra targets, if asked)."""
        roles = ("target", "extra") if with_extra else ("target",)
        return np.array([i for r in roles for i, (lab, role) in enumerate(zip(self.labels, self.roles))
                         if lab == cls and role == r], dtype=np.int64)

    def pool_labels(self, cls: str) -> np.ndarray:
        """Boolean relevance of every pool document for target class ``cls``."""
        labels = np.array(self.labels)
        return labels[self.pool] == cls

    def summary(self) -> dict[str, Any]:
        counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for lab, role in zip(self.labels, self.roles):
            counts[lab][role] += 1
        return {"name": self.name, "description": self.description, "documents": len(self.ids),
                "per_class": {c: dict(counts[c]) for c in self.classes}}


def cut_to_tokens(text: str, tokenizer: Any, max_length: int) -> str:
    """The shortest prefix of ``text`` holding its first ``max_length`` tokens (the whole text if shorter)."""
    head = text[: max(4096, 32 * max_length)]
    enc = tokenizer(head, add_special_tokens=False, return_offsets_mapping=True)
    offsets = enc["offset_mapping"]
    if len(offsets) <= max_length and len(head) == len(text):
        return text
    end = offsets[min(max_length, len(offsets)) - 1][1]
    return text[:end]


def _order(rows: Iterable[tuple[str, str]], seed: int) -> list[tuple[str, str]]:
    rows = list(rows)
    return [rows[i] for i in seeded_order([r[0] for r in rows], seed)]


def _mmlu_by_class(classes: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
    from nag_datasets.demo_data import load_source

    unknown = [c for c in classes if c not in MMLU_DOMAINS]
    if unknown:
        raise ValueError(f"unknown MMLU domains {unknown}; known: {sorted(MMLU_DOMAINS)}")
    domain_of = {s: d for d in classes for s in MMLU_DOMAINS[d]}
    ds = load_source("mmlu")
    seen: set[str] = set()
    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for rid, subject, text in zip(ds["id"], ds["subject"], ds["text"]):
        if subject in domain_of and text not in seen:
            seen.add(text)
            out[domain_of[subject]].append((rid, text))
    return out


def _gcide_by_class(classes: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
    from ..corpora import gcide_entries

    wanted = set(classes)
    seen: set[str] = set()
    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for i, entry in enumerate(gcide_entries()):
        if entry.field_label in wanted:
            text = strip_gcide_label(entry.text, entry.field_label).strip()
            if text not in seen:
                seen.add(text)
                out[entry.field_label].append((f"gcide/{i:06d}/{entry.headword}", text))
    return out


_DESCRIPTIONS = {
    "mmlu_domains": "MMLU test questions (question, four options, answer letter; no subject line) grouped into "
                    "content domains; target = held-out questions of one domain",
    "gcide_fields": "GCIDE (1913 Webster) entries carrying exactly one field label, with the label removed from "
                    "the text; target = held-out entries of one field",
}


def build_task(config: TaskConfig, tokenizer: Any, max_length: int, *, seed: int = 0) -> RetrievalTask:
    """Sample the task's documents (see the module docstring) and cut them to ``max_length`` tokens."""
    if config.kind == "mmlu_domains":
        by_class = _mmlu_by_class(config.classes)
    elif config.kind == "gcide_fields":
        by_class = _gcide_by_class(config.classes)
    else:
        raise ValueError(f"unknown task kind {config.kind!r}; use 'mmlu_domains' or 'gcide_fields'")
    if config.sensitivity_class is not None and config.sensitivity_class not in config.classes:
        raise ValueError(f"sensitivity class {config.sensitivity_class!r} is not one of {config.classes}")
    ids, texts, labels, roles = [], [], [], []
    for cls in config.classes:
        rows = [r for r in _order(by_class.get(cls, []), seed) if len(r[1]) >= config.min_chars]
        extra = config.n_extra if cls == config.sensitivity_class else 0
        need = config.n_target + config.n_pool + extra
        if len(rows) < need:
            raise ValueError(f"{config.kind}: class {cls!r} has {len(rows)} documents, {need} are needed")
        parts = (("target", rows[: config.n_target]),
                 ("pool", rows[config.n_target: config.n_target + config.n_pool]),
                 ("extra", rows[config.n_target + config.n_pool: need]))
        for role, chunk in parts:
            for rid, text in chunk:
                ids.append(rid)
                texts.append(cut_to_tokens(text, tokenizer, max_length))
                labels.append(cls)
                roles.append(role)
    return RetrievalTask(config.kind, _DESCRIPTIONS[config.kind], tuple(config.classes), ids, texts, labels, roles)
