"""Shared fixtures (the real bundled model, loaded once per session) and the default test tiers.

Every test is ``fast``, ``slow`` or ``full`` (``--strict-markers``): an explicit mark wins (a test's own, or its
module's ``pytestmark``); otherwise a test is ``slow`` when it uses the ``bundled`` or ``featurizer`` fixture, and
``fast`` otherwise. A test that loads the model or runs long subprocesses without those fixtures says so with a mark.
``make test-fast`` runs ``pytest -m fast`` (no model), ``make test`` everything but the opt-in ``full`` tier.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
import token_budget

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

#: Fixtures that load the real model.
MODEL_FIXTURES = frozenset({"bundled", "featurizer"})
TIERS = ("fast", "slow", "full")


REPORT_ENV = "NAG_TEST_TOKEN_REPORT"


def pytest_configure(config: pytest.Config) -> None:
    """Count model-forward tokens in this process and every Python process the tests start (see token_budget)."""
    folder = Path(tempfile.mkdtemp(prefix="nag-test-tokens-"))
    os.environ[token_budget.DIR_ENV] = str(folder)
    config.stash[_TOKEN_DIR] = folder
    token_budget.install()


_TOKEN_DIR = pytest.StashKey[Path]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    os.environ[token_budget.NODE_ENV] = item.nodeid
    yield
    os.environ[token_budget.NODE_ENV] = "(between tests)"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    folder = session.config.stash.get(_TOKEN_DIR, None)
    if folder is None:
        return
    summary = token_budget.summarize(token_budget.read_log(folder))
    shutil.rmtree(folder, ignore_errors=True)
    report = Path(os.environ.get(REPORT_ENV, Path(__file__).resolve().parent.parent / ".nag_cache" / "test_tokens.json"))
    token_budget.write_report(summary, report)
    session.config.stash[_TOKEN_SUMMARY] = (summary, report)
    if not summary["within_budget"] and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_TOKEN_SUMMARY = pytest.StashKey[tuple]()


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    got = config.stash.get(_TOKEN_SUMMARY, None)
    if got is None:
        return
    summary, report = got
    if not summary["modules"]:
        terminalreporter.write_line(f"model-forward tokens: none (report: {report})")
        return
    terminalreporter.section("model-forward tokens (CI budget)")
    for line in token_budget.format_report(summary):
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"report: {report}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        tiers = [tier for tier in TIERS if item.get_closest_marker(tier)]
        if len(tiers) > 1:  # e.g. a module-wide `fast` and a test's own `slow`: `-m fast` would run it
            raise pytest.UsageError(f"{item.nodeid} is marked {' and '.join(tiers)}: one tier per test")
        if tiers:
            continue
        slow = bool(MODEL_FIXTURES & set(getattr(item, "fixturenames", ())))
        item.add_marker(pytest.mark.slow if slow else pytest.mark.fast)
    # Fast tests first: in one `make test` session a broken basic fails within minutes, before any model loads.
    items.sort(key=lambda item: 0 if item.get_closest_marker("fast") else 1)


@pytest.fixture(autouse=True, scope="session")
def _quiet_datasets():
    """No `datasets` progress bars in test output."""
    import datasets

    datasets.disable_progress_bars()


@pytest.fixture(scope="session")
def bundled():
    """(model, tokenizer) of the bundled SmolLM2-135M-Instruct, fp32 on CPU."""
    from nag_datasets.featurize.models import load_model

    return load_model()


#: ``max_length`` of the shared featurizer: the default's 120 would cost four times the model tokens (CI budget).
TEST_MAX_LENGTH = 32


@pytest.fixture(scope="session")
def featurizer():
    """The default featurizer (bundled model, fwd_up, K=20, all layers) but ``max_length=32`` (CI token budget)."""
    from nag_datasets.featurize.featurizer import NAGFeaturizer

    return NAGFeaturizer(max_length=TEST_MAX_LENGTH)
