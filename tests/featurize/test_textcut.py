"""Huge and hostile text: the character-budget cut yields exactly the first ``max_length`` token ids of the uncut
document, on long real texts and adversarial ones, with bounded tokenizer work."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nag_datasets.featurize.textcut import clean_text, first_token_ids

pytestmark = pytest.mark.slow  # the bundled model's tokenizer

MAX_LENGTHS = (1, 7, 120, 1000)
BUDGETS = (None, 1, 5, 64)


@pytest.fixture(scope="module")
def tok():
    from transformers import AutoTokenizer

    from nag_datasets.featurize.models import converted_bundled_dir

    return AutoTokenizer.from_pretrained(str(converted_bundled_dir()[0]))


class CountingTokenizer:
    """Wraps a tokenizer and records the length of every text it is given."""

    def __init__(self, tok):
        self.tok = tok
        self.lengths: list[int] = []

    def __call__(self, text, **kwargs):
        self.lengths.append(len(text))
        return self.tok(text, **kwargs)


def _uncut(tok, text: str, add_special_tokens: bool = False) -> list[int]:
    return list(tok(clean_text(text), add_special_tokens=add_special_tokens)["input_ids"])


def _check(tok, text: str, full: list[int] | None = None, max_lengths=MAX_LENGTHS, budgets=BUDGETS) -> None:
    full = _uncut(tok, text) if full is None else full
    for max_length in max_lengths:
        for budget in budgets:
            ids, truncated = first_token_ids(text, tok, max_length, char_budget=budget)
            assert ids == full[:max_length], (max_length, budget, len(text))
            assert truncated == (len(full) > max_length), (max_length, budget)


def _kjv() -> str:
    from nag_research.corpora import DebianPackageError, kjv_verses

    try:
        return "\n".join(v.text for v in kjv_verses())
    except DebianPackageError as e:
        pytest.skip(f"the KJV is not available here: {e}")


def test_megabyte_real_text_kjv(tok):
    text = _kjv()
    assert len(text) > 4_000_000
    full = _uncut(tok, text)
    counting = CountingTokenizer(tok)
    ids, truncated = first_token_ids(text, counting, 120)
    assert ids == full[:120] and truncated
    assert max(counting.lengths) < 100_000  # bounded work: the 4 MB document was never tokenized whole
    _check(tok, text, full, max_lengths=(1, 120, 4096), budgets=(None, 3, 1000))
    # Documents starting anywhere in it (mid-word, mid-line).
    for start in (1, 1_000_003, 2_500_017):
        piece = text[start:start + 300_000]
        _check(tok, piece, max_lengths=(120, 2000), budgets=(None, 2))


def test_concatenated_demo_texts(tok):
    from nag_datasets.demo_data import load_demo

    texts = load_demo()["text"][:]
    for sep in ("\n\n", "", " "):
        _check(tok, sep.join(texts))


ADVERSARIAL = {
    "giant word": "supercalifragilistic" * 15_000,
    "one char": "x" * 300_000,
    "spaces then word": " " * 200_000 + "end",
    "newlines": "\n" * 150_000 + "text",
    "crlf": "line\r\n" * 40_000,
    "tabs and spaces": "\t \t  " * 40_000,
    "digits": "0123456789" * 30_000,
    "one digit": "7" * 200_000,
    "punctuation": "!?.,;:" * 40_000,
    "apostrophes": "'s't're've'll'd" * 20_000,
    "emoji": "😀" * 100_000,
    "zwj families": "👩‍👩‍👧‍👦" * 20_000,
    "flags and skin tones": "🇫🇷👍🏽🏳️‍🌈" * 20_000,
    "combining marks": "e" + "\u0301\u0302\u0303\u0304" * 50_000,
    "stacked zalgo": "Z\u0351\u0352\u0353\u0354\u0355" * 30_000,
    "mixed scripts": "Hello мир 世界 مرحبا שלום नमस्ते こんにちは 안녕 Γειά " * 4_000,
    "cjk run": "漢字仮名交じり文" * 30_000,
    "rtl overrides": "\u202eabc\u202d123\u200f" * 30_000,
    "zero width": "a\u200b\u200c\u200d\ufeff" * 40_000,
    "control chars and NUL": "".join(chr(i) for i in range(32)) * 8_000 + "\x7f\x00" * 10_000,
    "private use and noncharacters": "\ue000\uf8ff\ufdd0\uffff\U0010fffd" * 30_000,
    "lone surrogates": "abc\ud800def\udfff" * 20_000,
    "words with one huge word inside": "a b c " * 10 + "y" * 200_000 + " tail",
    "alternating space word": "a " * 150_000,
}


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_adversarial_text(tok, name):
    text = ADVERSARIAL[name]
    counting = CountingTokenizer(tok)
    first_token_ids(text, counting, 120)
    assert max(counting.lengths) < len(text)  # cut before tokenization
    _check(tok, text, budgets=(None, 1, 9))


def test_short_and_special_tokens(tok):
    for text in ("a", "Hello world", "😀", "\x00", "\ud800"):
        _check(tok, text)
        for max_length in (1, 3):
            ids, _ = first_token_ids(text, tok, max_length, add_special_tokens=True)
            assert ids == _uncut(tok, text, add_special_tokens=True)[:max_length]


def test_lone_surrogates_become_replacement_char():
    assert clean_text("a\ud800b") == "a\ufffdb"
    assert clean_text("ok 😀") == "ok 😀"
    assert clean_text("\udfff\ud800") == "\ufffd\ufffd"


PIECES = [" ", "  ", "\n", "\n\n", "\t", "\r\n", "a", "word", "Hello", "'s", "123", "7", ".", "!!", "😀", "👩‍👩‍👧",
          "\u0301", "中文", "Ω", "é", "\u200b", "\x00", "\x1f", "\ud800", "\U0010fffd"]


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(parts=st.lists(st.tuples(st.sampled_from(PIECES), st.sampled_from([1, 1, 2, 7, 300])), min_size=1,
                      max_size=300),
       max_length=st.sampled_from([1, 2, 8, 32, 120]), budget=st.sampled_from([None, 1, 2, 3, 10, 50]))
def test_cut_matches_uncut_on_random_compositions(tok, parts, max_length, budget):
    text = "".join(piece * n for piece, n in parts)
    full = _uncut(tok, text)
    ids, truncated = first_token_ids(text, tok, max_length, char_budget=budget)
    assert ids == full[:max_length]
    assert truncated == (len(full) > max_length)


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(alphabet=st.characters(codec=None), min_size=0, max_size=400),
       repeat=st.sampled_from([1, 50]), max_length=st.sampled_from([1, 16, 120]),
       budget=st.sampled_from([None, 1, 7]))
def test_cut_matches_uncut_on_arbitrary_unicode(tok, text, repeat, max_length, budget):
    text = text * repeat
    full = _uncut(tok, text)
    ids, truncated = first_token_ids(text, tok, max_length, char_budget=budget)
    assert ids == full[:max_length]
    assert truncated == (len(full) > max_length)
