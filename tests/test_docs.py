"""Every code block of README.md and docs/*.md runs, so the documentation cannot drift from the code.

Each page is one test: its ``python`` blocks run in order in one namespace (like a notebook) and its ``bash`` blocks
run with ``bash -euo pipefail``, all in one temporary folder prepared with tiny real data from the shipped demo
sample (``target.jsonl`` / ``pool.jsonl`` and the same as ``save_to_disk`` folders ``target/`` / ``pool/``), the
project's virtual environment first on ``PATH`` and the Hub offline. Blocks see the page's own outputs (a profile
saved by one block is loaded by the next).

An HTML comment right before a block can adjust how the test runs it, never what the reader sees:

- ``<!-- test: replace OLD => NEW -->`` (repeatable, ``;``-separated): run the block with OLD replaced by NEW, e.g. an
  ``s3://`` URL by a ``memory://`` one (fsspec's in-memory filesystem, in the same process for python blocks);
- ``<!-- test: tested-by NODE -->``: the block is run by another test (``tests/...py::name``, which must exist) or by
  ``.ci/run`` (whose text must contain the block's command), e.g. ``make test`` itself.

Fences of any other language than ``python`` and ``bash`` are refused (a fast test), so nothing looks runnable
without running.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\s*$")
DIRECTIVE = re.compile(r"<!--\s*test:(.*?)-->", re.DOTALL)
LANGUAGES = ("python", "bash")


@dataclass
class Block:
    page: Path
    line: int
    language: str
    code: str
    replace: list[tuple[str, str]] = field(default_factory=list)
    tested_by: str | None = None

    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    def runnable(self) -> str:
        code = self.code
        for old, new in self.replace:
            assert old in code, f"{self.where()}: directive replaces {old!r}, which the block does not contain"
            code = code.replace(old, new)
        return code


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of a page with the directive of the comment right above each (if any)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start, language = i, m.group(1)
        j = i + 1
        while j < len(lines) and lines[j].strip() != "```":
            j += 1
        block = Block(page, start + 1, language, "\n".join(lines[start + 1 : j]) + "\n")
        above = "\n".join(lines[max(0, start - 3) : start])
        d = DIRECTIVE.findall(above)
        if d:
            for part in d[-1].split(";"):
                part = part.strip()
                if part.startswith("replace "):
                    old, new = part[len("replace ") :].split("=>")
                    block.replace.append((old.strip(), new.strip()))
                elif part.startswith("tested-by "):
                    block.tested_by = part[len("tested-by ") :].strip()
                elif part:
                    raise AssertionError(f"{block.where()}: unknown test directive {part!r}")
        found.append(block)
        i = j + 1
    return found


@pytest.mark.fast
@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_block_is_python_or_bash_and_parses(page: Path) -> None:
    for block in blocks(page):
        assert block.language in LANGUAGES, f"{block.where()}: a ```{block.language} block cannot be run"
        if block.language == "python":
            ast.parse(block.runnable(), filename=block.where())
        if block.tested_by and not _is_readme_setup(block):
            if block.tested_by == ".ci/run":
                ci = (ROOT / ".ci" / "run").read_text()
                assert all(line.split("#")[0].strip() in ci for line in block.code.splitlines()
                           if line.split("#")[0].strip()), f"{block.where()}: not in .ci/run"
            else:
                path, _, name = block.tested_by.partition("::")
                text = (ROOT / path).read_text()
                assert f"def {name.split('[')[0]}(" in text, f"{block.where()}: {block.tested_by} does not exist"


#: Characters kept of each demo document in the docs' workspace: real text, but a few dozen tokens, so that every
#: page's featurization costs little of the test session's model-token budget (tests/token_budget.py).
DOC_CHARS = 200


@pytest.mark.fast
def test_readme_starts_with_the_two_commands() -> None:
    """The README opens with exactly ``make demo`` and ``make test``: the demo target runs ``nag-datasets demo``
    (run by tests/cli/test_cli.py::test_demo_command_runs) and CI's ``.ci/run`` runs ``make test``."""
    first = blocks(ROOT / "README.md")[0]
    assert first.line == 1 and first.language == "bash"
    commands = [line.split("#")[0].strip() for line in first.code.splitlines() if line.split("#")[0].strip()]
    assert commands == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo: setup\n\t\$\(BIN\)/nag-datasets demo\b", makefile, re.MULTILINE)
    assert re.search(r"^test: setup\n\t.*pytest", makefile, re.MULTILINE)
    assert re.search(r"^make test$", (ROOT / ".ci" / "run").read_text(), re.MULTILINE)
    assert "def test_demo_command_runs(" in (ROOT / "tests" / "cli" / "test_cli.py").read_text()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny real data from the shipped demo sample, each text cut to :data:`DOC_CHARS` characters: 4 target documents
    (GSM8K) as ``target.jsonl`` and ``target/``, 10 pool documents of the three sources as ``pool.jsonl`` and
    ``pool/``, a 64-row ``sample/`` (a distilled scorer trains on at least 50 rows) and a 32-row text-only
    ``crawl.jsonl`` / ``crawl/`` (two shards) for the distillation and
    datatrove pages; ``benchmarks`` and ``examples`` link to the checkout's."""
    from nag_datasets.demo_data import load_demo

    folder = tmp_path_factory.mktemp("docs")

    def cut(ds):
        return ds.map(lambda row: {"text": row["text"][:DOC_CHARS]})

    target = cut(load_demo("target").select(range(4)))
    full_pool = load_demo("pool")
    pool = cut(full_pool.select(range(0, len(full_pool), len(full_pool) // 10)).select(range(10)))
    sample = cut(full_pool.select(range(1, len(full_pool), len(full_pool) // 64)).select(range(64)))
    crawl = sample.select(range(32)).select_columns(["id", "text"])
    for name, ds in (("target", target), ("pool", pool), ("sample", sample)):
        ds.to_json(str(folder / f"{name}.jsonl"))
        ds.save_to_disk(str(folder / name))
    crawl.to_json(str(folder / "crawl.jsonl"))
    (folder / "crawl").mkdir()
    for i in range(2):
        crawl.shard(2, i, contiguous=True).to_json(str(folder / "crawl" / f"part-{i}.jsonl"))
    for name in ("benchmarks", "examples"):
        (folder / name).symlink_to(ROOT / name)
    return folder


def _is_readme_setup(block: Block) -> bool:
    """The README's first block (``make demo`` / ``make test``) is checked above, not run inside the test session."""
    return block.page == ROOT / "README.md" and block.line == 1


def _environment() -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "benchmarks"), env.get("PYTHONPATH", "")])
    return env


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_code_blocks_run(page: Path, workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = [b for b in blocks(page) if b.tested_by is None and not _is_readme_setup(b)]
    if not run:
        pytest.skip("no block of this page runs here (each is tested elsewhere)")
    import shutil

    here = tmp_path / "work"
    shutil.copytree(workspace, here)
    monkeypatch.chdir(here)
    env = _environment()
    namespace: dict = {"__name__": "__docs__"}
    for block in run:
        code = block.runnable()
        if block.language == "python":
            try:
                exec(compile(code, block.where(), "exec"), namespace)  # noqa: S102 (our own documentation)
            except Exception as e:
                raise AssertionError(f"{block.where()}: the python block failed: {type(e).__name__}: {e}") from e
        else:
            proc = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=here, env=env, capture_output=True,
                                  text=True, timeout=1800, check=False)
            assert proc.returncode == 0, f"{block.where()}: the bash block failed:\n{proc.stderr[-3000:]}"
