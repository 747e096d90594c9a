from __future__ import annotations

import os
import subprocess
from collections import Counter

import pytest
from nag_research import corpora
from nag_research.corpora import (
    DebianPackageError,
    cache_root,
    decode_dictd_number,
    fetch_debian_package,
    gcide_entries,
    gcide_field_labels,
    kjv_verses,
    wordnet_glosses,
)

PACKAGES = ("dict-gcide", "dict-wn", "bible-kjv", "bible-kjv-text")


@pytest.fixture(scope="module")
def fetched() -> None:
    """Fetch the packages into the user's cache once; refresh empty package lists when running as root (CI)."""
    try:
        for name in PACKAGES:
            fetch_debian_package(name)
    except DebianPackageError as error:
        if "apt-get update" not in str(error) or os.geteuid() != 0:
            raise
        subprocess.run(["apt-get", "update"], check=True, capture_output=True)
        for name in PACKAGES:
            fetch_debian_package(name)


@pytest.mark.fast
def test_dictd_numbers_use_big_endian_base64_digits():
    assert decode_dictd_number("A") == 0
    assert decode_dictd_number("Kj") == 10 * 64 + 35
    assert decode_dictd_number("/") == 63
    assert decode_dictd_number("BAA") == 64 * 64


@pytest.mark.fast
def test_field_labels_come_from_the_part_of_speech_or_sense_start():
    assert gcide_field_labels('Appendicitis \\Ap*pend`i*ci"tis\\, n. (Med.)\n   Inflammation.\n') == {"Med."}
    assert gcide_field_labels('Ant \\Ant\\, n. [AS. [ae]mete.] (Zo["o]l.)\n   An insect.\n') == {"Zool."}
    two = "Bay \\Bay\\, n.\n   1. (Bot.) A tree.\n\n   2. (Arch.) A compartment.\n"
    assert gcide_field_labels(two) == {"Bot.", "Arch."}
    assert gcide_field_labels("Tort \\Tort\\, a.\n   Stretched tight (as a rope). --Emerson (Poet.).\n") == set()


@pytest.mark.fast
def test_cache_root_prefers_argument_then_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("NAG_DATASETS_CACHE", str(tmp_path / "env"))
    assert cache_root(tmp_path / "arg") == tmp_path / "arg"
    assert cache_root() == tmp_path / "env"
    monkeypatch.delenv("NAG_DATASETS_CACHE")
    assert cache_root().parts[-2:] == (".cache", "nag_datasets")


@pytest.mark.fast
def test_missing_apt_get_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(corpora.shutil, "which", lambda tool: None)
    with pytest.raises(DebianPackageError, match="apt-get and dpkg-deb not found.*'dict-wn'"):
        fetch_debian_package("dict-wn", tmp_path)


@pytest.mark.slow
def test_fetched_package_is_reused_without_apt(fetched, monkeypatch):
    def no_subprocess(*args, **kwargs):
        raise AssertionError("apt-get must not run for a cached package")

    monkeypatch.setattr(corpora.subprocess, "run", no_subprocess)
    folder = fetch_debian_package("dict-wn")
    assert (folder / "usr/share/dictd/wn.index").is_file()
    assert (folder / "usr/share/dictd/wn.dict.dz").is_file()


@pytest.mark.slow
def test_unknown_debian_package_is_reported(tmp_path):
    with pytest.raises(DebianPackageError, match="apt-get download nag-datasets-no-such-package"):
        fetch_debian_package("nag-datasets-no-such-package", tmp_path)


@pytest.mark.slow
def test_gcide_entries_and_field_labels(fetched):
    entries = list(gcide_entries())
    assert len(entries) > 120_000
    labels = Counter(entry.field_label for entry in entries if entry.field_label)
    assert sum(labels.values()) > 20_000
    assert {"Med.", "Law", "Bot.", "Zool.", "Chem.", "Mus.", "Naut.", "Min."} <= set(labels)
    assert labels["Zool."] > labels["Bot."] > labels["Med."] > labels["Law"] > 500
    appendicitis = [entry for entry in entries if entry.headword == "Appendicitis"]
    assert len(appendicitis) == 1
    assert appendicitis[0].field_label == "Med."
    assert "Inflammation of the vermiform appendix." in appendicitis[0].text
    torts = {entry.text.split("\n", 1)[0]: entry.field_label for entry in entries if entry.headword == "Tort"}
    assert torts == {"Tort \\Tort\\, n. [F., from LL. tortum, fr. L. tortus twisted,": "Law", "Tort \\Tort\\, a.": None}


@pytest.mark.slow
def test_wordnet_glosses(fetched):
    glosses = list(wordnet_glosses())
    assert 110_000 < len(glosses) < 118_000
    assert len({(gloss.pos, gloss.gloss) for gloss in glosses}) == len(glosses)
    assert Counter(gloss.pos for gloss in glosses).keys() == {"n", "v", "adj", "adv"}
    assert not [gloss for gloss in glosses if "[syn:" in gloss.gloss or "\n" in gloss.gloss or not gloss.gloss]
    tort = "(law) any wrongdoing for which an action for damages may be brought"
    assert [(gloss.pos, gloss.headword) for gloss in glosses if gloss.gloss == tort] == [("n", "civil wrong")]
    assert [gloss.headword for gloss in glosses[:2]] == ["'hood", "'s gravenhage"]
    assert glosses[0].gloss == "(slang) a neighborhood"


@pytest.mark.slow
def test_kjv_verses(fetched):
    verses = list(kjv_verses())
    assert len(verses) == 31_102
    assert len({verse.book for verse in verses}) == 66
    assert len({(verse.book, verse.chapter) for verse in verses}) == 1_189
    assert verses[0].reference == "Genesis 1:1"
    assert verses[0].text == "In the beginning God created the heaven and the earth."
    assert verses[-1].reference == "Revelation 22:21"
    by_reference = {verse.reference: verse.text for verse in verses}
    assert by_reference["John 11:35"] == "Jesus wept."
    assert by_reference["1 Samuel 1:1"].startswith("Now there was a certain man of Ramathaimzophim")
