"""Readers for general and domain-labelled real text from Debian packages, fetched at run time, never shipped.

GCIDE (the 1913 Webster), WordNet and the King James Bible are GPL-licensed or come with their own terms, so
they stay out of the package: `fetch_debian_package` runs ``apt-get download`` and ``dpkg-deb -x`` into a cache
folder (no installation, no ``dictd`` server) and the readers parse the extracted files.

>>> entry = next(e for e in gcide_entries() if e.headword == "Appendicitis")  # doctest: +SKIP
>>> entry.field_label  # doctest: +SKIP
'Med.'

Cache folder: ``cache_dir`` if given, else ``$NAG_DATASETS_CACHE``, else ``~/.cache/nag_datasets``; packages are
extracted under ``<cache>/debian/<package>``.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from filelock import FileLock

from nag_datasets.errors import NAGError

DICTD_BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_COMPLETE_MARKER = ".nag_datasets_complete"
_DICTD_DIGITS = {character: value for value, character in enumerate(DICTD_BASE64)}
_POS = r"(?:n|a|adv|v\. t|v\. i|v|prep|conj|interj|pron|p\. p|p\. a|p\. pr|pl|n\. pl|imp)\."
_LABEL = r"\(([A-Z][A-Za-z\[\]\"'. &]{1,30}?)\)"
_ETYMOLOGY = r"\[(?:[^\[\]]|\[[^\[\]]*\])*\]"  # may hold accent escapes such as ['e]
_LABEL_AFTER_POS = re.compile(r"\\,? " + _POS + r",?(?: " + _ETYMOLOGY + r")?\s+" + _LABEL)
_LABEL_AT_SENSE = re.compile(r"\n\s+(?:\d+\.|\([a-z]\))\s+" + _LABEL)
_GCIDE_ACCENT = re.compile(r"\[\"(\w)\]")
_GCIDE_PAREN = re.compile(r"\(([^()\n]{1,40})\)")
_WN_SENSE = re.compile(r"^ {4}(?:(n|v|adj|adv) +)?\d+: (.*)$")
_WN_CROSS_REFERENCE = re.compile(r"\s*\[(?:syn|ant): [^\]]*\]")
_KJV_CHAPTER = re.compile(r"^(.+) (\d+)$")
_KJV_VERSE = re.compile(r"^ +(\d+) (.*)$")


class DebianPackageError(NAGError, RuntimeError):
    """A Debian package could not be downloaded, extracted or run; the message says what to do."""


class GcideEntry(NamedTuple):
    headword: str
    text: str
    field_label: str | None


class WordNetGloss(NamedTuple):
    headword: str
    pos: str
    gloss: str


class KjvVerse(NamedTuple):
    book: str
    chapter: int
    verse: int
    text: str

    @property
    def reference(self) -> str:
        return f"{self.book} {self.chapter}:{self.verse}"


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """The cache folder: ``cache_dir``, else ``$NAG_DATASETS_CACHE``, else ``~/.cache/nag_datasets``.

    >>> cache_root("/tmp/nag").as_posix()
    '/tmp/nag'
    """
    from nag_datasets.storage.cache import cache_root as package_cache_root

    return Path(cache_dir) if cache_dir is not None else package_cache_root()


def fetch_debian_package(name: str, cache_dir: str | Path | None = None) -> Path:
    """Download Debian package ``name`` and extract it (no install); return the folder holding its ``usr/``.

    Extraction happens in a temporary folder renamed into place under a file lock, so concurrent callers
    (parallel tests, ``num_proc`` workers) download once and never see a half-extracted tree.

    >>> (fetch_debian_package("dict-wn") / "usr/share/dictd/wn.index").is_file()  # doctest: +SKIP
    True
    """
    root = cache_root(cache_dir) / "debian"
    target = root / name
    if (target / _COMPLETE_MARKER).is_file():
        return target
    missing = [tool for tool in ("apt-get", "dpkg-deb") if shutil.which(tool) is None]
    if missing:
        raise DebianPackageError(
            f"{' and '.join(missing)} not found: the Debian package {name!r} can only be fetched on a Debian or "
            "Ubuntu system (it is downloaded at run time because its licence keeps it out of nag_datasets)"
        )
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / f"{name}.lock")):
        if (target / _COMPLETE_MARKER).is_file():
            return target
        with tempfile.TemporaryDirectory(dir=root, prefix=f".{name}-") as scratch:
            _run(["apt-get", "download", name], cwd=scratch, package=name)
            debs = sorted(Path(scratch).glob("*.deb"))
            if len(debs) != 1:
                raise DebianPackageError(f"`apt-get download {name}` left {len(debs)} .deb files, expected one")
            extracted = Path(scratch) / "tree"
            _run(["dpkg-deb", "-x", str(debs[0]), str(extracted)], cwd=scratch, package=name)
            (extracted / _COMPLETE_MARKER).write_text(debs[0].name + "\n", encoding="utf-8")
            if target.exists():
                shutil.rmtree(target)
            os.replace(extracted, target)
    return target


def decode_dictd_number(digits: str) -> int:
    """An offset or length from a dictd ``.index`` file: big-endian base 64 over ``A-Z a-z 0-9 + /``.

    >>> decode_dictd_number("Kj"), decode_dictd_number("A"), decode_dictd_number("/")
    (675, 0, 63)
    """
    value = 0
    for character in digits:
        value = value * 64 + _DICTD_DIGITS[character]
    return value


def read_dictd(folder: str | Path, name: str) -> Iterator[tuple[tuple[str, ...], str]]:
    """Each entry of the dictd database ``folder/name.{index,dict.dz}`` once, in file order, with its headwords.

    An entry is a distinct ``(offset, length)`` span; several index lines (variant spellings, sub-entries) may
    point at it. The ``00-*`` metadata entries and spans that do not start at a line start (stray index lines)
    are skipped. The few bytes that are not UTF-8 are replaced with U+FFFD.

    >>> next(read_dictd(fetch_debian_package("dict-wn") / "usr/share/dictd", "wn"))[0]  # doctest: +SKIP
    ("'hood",)
    """
    folder = Path(folder)
    headwords: dict[tuple[int, int], list[str]] = {}
    with (folder / f"{name}.index").open(encoding="utf-8") as index:
        for line in index:
            headword, offset, length = line.rstrip("\n").split("\t")[:3]
            span = (decode_dictd_number(offset), decode_dictd_number(length))
            headwords.setdefault(span, []).append(headword)
    with gzip.open(folder / f"{name}.dict.dz") as handle:
        data = handle.read()
    for (offset, length), words in sorted(headwords.items()):
        if any(word.startswith(("00-", "00database")) for word in words):
            continue
        if offset > 0 and data[offset - 1 : offset] != b"\n":
            continue
        yield tuple(words), data[offset : offset + length].decode("utf-8", errors="replace")


def gcide_field_labels(text: str) -> set[str]:
    """The field labels of a GCIDE entry: ``(Label)`` right after the part of speech or at the start of a sense.

    Labels are returned as written (``Med.``, ``Law``, ``Zool.``, ``Min.`` for mineralogy), with GCIDE's accent
    escapes folded (``Zo["o]l.`` -> ``Zool.``). Parenthesised text elsewhere (examples, sub-entries) is ignored.

    >>> sorted(gcide_field_labels('Tort \\\\Tort\\\\, n. [F.]\\n   1. Mischief.\\n\\n   2. (Law) Any civil wrong.\\n'))
    ['Law']
    >>> gcide_field_labels('Appendicitis \\\\Ap*pend`i*ci"tis\\\\, n. (Med.)\\n   Inflammation.\\n')
    {'Med.'}
    """
    found = _LABEL_AFTER_POS.findall(text) + _LABEL_AT_SENSE.findall(text)
    return {_GCIDE_ACCENT.sub(r"\1", label) for label in found}


def strip_gcide_label(text: str, label: str) -> str:
    """Remove every ``(label)`` marker from a GCIDE entry (accent escapes folded), so the class is not in the text.

    >>> strip_gcide_label('Tort \\\\Tort\\\\, n.\\n   2. (Law) Any civil wrong.', 'Law')   # runs of spaces fold to one
    'Tort \\\\Tort\\\\, n.\\n 2. Any civil wrong.'
    """
    def repl(m: re.Match[str]) -> str:
        return "" if _GCIDE_ACCENT.sub(r"\1", m.group(1)).strip() == label else m.group(0)

    out = _GCIDE_PAREN.sub(repl, text)
    return re.sub(r"[ \t]{2,}", " ", out)


def gcide_entries(cache_dir: str | Path | None = None) -> Iterator[GcideEntry]:
    """Every GCIDE (1913 Webster + supplements) entry: headword, raw dictd text, and its field label or None.

    ``field_label`` is set only when the entry carries exactly one distinct field label (about 24.5k of
    ~126k entries); entries with none or several get None. The text keeps GCIDE's markup (``{cross refs}``,
    ``\\pro*nun"ci*a`tion\\``, ``["e]`` accents) as dictd serves it.

    >>> sum(entry.field_label == "Law" for entry in gcide_entries())  # doctest: +SKIP
    832
    """
    folder = fetch_debian_package("dict-gcide", cache_dir) / "usr/share/dictd"
    for headwords, text in read_dictd(folder, "gcide"):
        headword = text.split(" \\", 1)[0] if " \\" in text.split("\n", 1)[0] else headwords[0]
        labels = gcide_field_labels(text)
        yield GcideEntry(headword, text, labels.pop() if len(labels) == 1 else None)


def wordnet_glosses(cache_dir: str | Path | None = None) -> Iterator[WordNetGloss]:
    """Every distinct WordNet 3.0 gloss (definition plus quoted examples), once, with a headword and POS.

    A synset's gloss is listed under each of its words in the dictd file; it is yielded once, with the first
    headword (in file order) that carries it: about 117k glosses, close to WordNet's 117,659 synsets (a few
    synsets share a gloss). ``[syn: ...]``/``[ant: ...]`` cross references are removed and line breaks joined.
    ``pos`` is ``n``, ``v``, ``adj`` or ``adv``.

    >>> next(wordnet_glosses())  # doctest: +SKIP
    WordNetGloss(headword="'hood", pos='n', gloss='(slang) a neighborhood')
    """
    folder = fetch_debian_package("dict-wn", cache_dir) / "usr/share/dictd"
    seen: set[tuple[str, str]] = set()
    for headwords, text in read_dictd(folder, "wn"):
        for pos, gloss in _wordnet_senses(text):
            if (pos, gloss) not in seen:
                seen.add((pos, gloss))
                yield WordNetGloss(headwords[0], pos, gloss)


def kjv_verses(cache_dir: str | Path | None = None) -> Iterator[KjvVerse]:
    """The 31,102 verses of the King James Bible, in canonical order, one unwrapped line of text each.

    The text is stored compressed in ``bible-kjv-text`` and only readable through the ``bible`` program of
    ``bible-kjv``; both are extracted (not installed) and the program dumps Genesis 1:1 to Revelation 22:21.

    >>> next(kjv_verses()).text  # doctest: +SKIP
    'In the beginning God created the heaven and the earth.'
    """
    program = fetch_debian_package("bible-kjv", cache_dir) / "usr/bin/bible"
    data = fetch_debian_package("bible-kjv-text", cache_dir) / "usr/lib"
    output = _run([str(program), "-p", str(data), "-l1000000", "gen1:1-rev22:21"], cwd=None, package="bible-kjv")
    book, chapter = "", 0
    for line in output.splitlines():
        verse = _KJV_VERSE.match(line)
        if verse and book:
            yield KjvVerse(book, chapter, int(verse.group(1)), verse.group(2).strip())
            continue
        heading = _KJV_CHAPTER.match(line)
        if heading:
            book, chapter = heading.group(1), int(heading.group(2))


def _wordnet_senses(text: str) -> Iterator[tuple[str, str]]:
    pos = ""
    sense: list[str] = []
    for line in text.split("\n")[1:]:
        start = _WN_SENSE.match(line)
        if start:
            if sense:
                yield pos, _wordnet_gloss(sense)
            pos = start.group(1) or pos
            sense = [start.group(2)]
        elif line.strip() and sense:
            sense.append(line.strip())
    if sense:
        yield pos, _wordnet_gloss(sense)


def _wordnet_gloss(lines: list[str]) -> str:
    # dictd wraps at spaces, but also inside hyphenated words ("{dog-\n iron}"): rejoin those without a space
    joined = ""
    for line in lines:
        wrapped_at_hyphen = joined.endswith("-") and not joined.endswith((" -", "--"))
        joined += line if wrapped_at_hyphen or not joined else " " + line
    return _WN_CROSS_REFERENCE.sub("", joined).strip()


def _run(command: list[str], *, cwd: str | None, package: str) -> str:
    try:
        result = subprocess.run(command, check=False, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    except OSError as error:
        raise DebianPackageError(f"could not run {command[0]} for the Debian package {package!r}: {error}") from None
    if result.returncode != 0:
        hint = ""
        if "Unable to locate package" in result.stderr or "has no installation candidate" in result.stderr:
            hint = " The package lists are probably empty or stale: run `apt-get update` (as root) first."
        raise DebianPackageError(
            f"`{' '.join(command)}` failed with exit status {result.returncode}: {result.stderr.strip()}{hint}"
        )
    return result.stdout
