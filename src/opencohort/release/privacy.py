"""The release-level privacy scan: no direct identifier may appear in any string or number."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

import numpy as np
import pandas as pd

_WORD = re.compile(r"[\w@.'+-]+")
_DIGITS = re.compile(r"\d[\d\s().-]{5,}\d")
_ZIP5 = re.compile(r"(?<!\d)(\d{5})(?:-\d{4})?(?!\d)")
_MAX_WORDS = 6
#: Whole numbers below this convert to int64 exactly (larger ones are compared as text).
_INT_LIMIT = 2**53


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def identifier_sets(identifiers: pd.DataFrame) -> tuple[set[str], set[str]]:
    """Normalised identifier phrases and digit strings to look for.

    Parameters
    ----------
    identifiers
        The registry's identity table (first, middle and last name, street address, phone,
        email, SSN, MRN).

    Returns
    -------
    phrases : set of str
        Lower-case, whitespace-collapsed full names (first last, first middle last), emails,
        MRNs and street addresses.
    digits : set of str
        Phones and SSNs as digits only (phones also without a leading 1).
    """
    f = {c: identifiers[c].astype("string").fillna("").tolist() for c in identifiers.columns}
    first, middle, last = f["first_name"], f["middle_name"], f["last_name"]
    candidates = {
        *(" ".join(n) for n in zip(first, last, strict=True)),
        *(" ".join(n) for n in zip(first, middle, last, strict=True)),
        *f["email"],
        *f["mrn"],
        *f["street_address"],
    }
    phrases = {_norm(v) for v in candidates if len(v.strip()) >= 4}
    digits: set[str] = set()
    for value in {*f["phone"], *f["ssn"]}:
        d = re.sub(r"\D", "", value)
        if len(d) == 11 and d.startswith("1"):
            d = d[1:]
        if len(d) >= 7:
            digits.add(d)
    return phrases, digits


def _hits(value: str, phrases: set[str], digits: set[str]) -> bool:
    words = [w.strip(".,;:'\"()") for w in _WORD.findall(value.lower())]
    for n in range(1, _MAX_WORDS + 1):
        for i in range(len(words) - n + 1):
            if " ".join(words[i : i + n]) in phrases:
                return True
    if _norm(value) in phrases:
        return True
    for run in _DIGITS.findall(value):
        d = re.sub(r"\D", "", run)
        if d in digits or (len(d) == 11 and d[1:] in digits):
            return True
    return bool(re.sub(r"\D", "", value) in digits)


def distinct_text(values: pd.Series) -> np.ndarray:
    """The distinct non-missing values of a column as text (converted after deduplication)."""
    return pd.Series(values.dropna().unique(), dtype=object).astype(str).unique()


def scan_frames(frames: Mapping[str, pd.DataFrame], identifiers: pd.DataFrame) -> list[dict]:
    """Find direct identifiers in every string and number of every frame.

    Parameters
    ----------
    frames
        Label (e.g. ``registered/omop/note``) -> frame.
    identifiers
        The registry's identity table.

    Returns
    -------
    list of dict
        One record per (table, column) with a hit: table, column and the number of values
        holding an identifier (never the value itself). Empty when the frames are clean.
    """
    finder = Finder(identifiers)
    return [hit for label, frame in frames.items() for hit in finder.frame_hits(label, frame)]


class Finder:
    """The identifiers to look for, with each text value's verdict remembered.

    A release repeats most of its text values (a source code in both tiers, in many
    columns), so each distinct text is judged once per check.
    """

    def __init__(self, identifiers: pd.DataFrame, *, zips: Collection[str] = ()) -> None:
        self.phrases, self.digits = identifier_sets(identifiers)
        self.numbers = _digit_numbers(self.digits)
        self.zips = set(zips)
        self._seen: dict[str, bool] = {}

    def zip_hits(self, values) -> int:
        """How many of `values` (distinct strings) hold one of `zips` as a ZIP5 or ZIP+4."""
        zips = self.zips
        return sum(any(z in zips for z in _ZIP5.findall(v)) for v in values) if zips else 0

    def text_hits(self, values) -> int:
        """How many of `values` (distinct strings) hold an identifier."""
        seen, n = self._seen, 0
        for value in values:
            hit = seen.get(value)
            if hit is None:
                hit = seen[value] = _hits(value, self.phrases, self.digits)
            n += hit
        return n

    def number_hits(self, found: np.ndarray) -> int:
        """How many of `found` (distinct numbers) print as a phone or SSN's digits."""
        found = found[np.isfinite(found)] if found.dtype.kind == "f" else found
        whole = np.abs(found[(found == np.floor(found)) & (np.abs(found) >= 1e6)])
        small = whole < _INT_LIMIT
        at = whole[small].astype(np.int64)
        numbers = self.numbers  # sorted: membership by binary search, not a re-sort per column
        where = np.minimum(np.searchsorted(numbers, at), max(len(numbers) - 1, 0))
        hits = int(np.sum(numbers[where] == at)) if len(numbers) else 0
        return hits + sum(str(int(v)) in self.digits for v in whole[~small])

    def frame_hits(self, label: str, frame: pd.DataFrame) -> list[dict]:
        """:func:`scan_frames` of one frame: a record per column with a hit."""
        hits = []
        for column in frame.columns:
            if n := self.column_hits(frame[column]):
                hits.append({"table": label, "column": column, "values": int(n)})
        return hits

    def column_hits(self, values: pd.Series) -> int:
        """How many distinct values of a column hold an identifier (numbers: phone or SSN)."""
        if values.dtype == object or pd.api.types.is_string_dtype(values.dtype):
            return self.text_hits(distinct_text(values))
        if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values):
            found = pd.to_numeric(values, errors="coerce").dropna().to_numpy()
            return self.number_hits(pd.unique(found))
        return 0


def _digit_numbers(digits: set[str]) -> np.ndarray:
    """The digit strings a number below ``_INT_LIMIT`` can print as (no leading zero), sorted."""
    found = [int(d) for d in digits if d[0] != "0" and int(d) < _INT_LIMIT]
    return np.unique(np.array(found, dtype=np.int64))
