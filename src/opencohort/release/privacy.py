"""The release-level privacy scan: no direct identifier may appear in any string value."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import pandas as pd

_WORD = re.compile(r"[\w@.'+-]+")
_DIGITS = re.compile(r"\d[\d\s().-]{5,}\d")
_MAX_WORDS = 6


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
    f = identifiers.astype("string").fillna("")
    phrases: set[str] = set()
    for values in (
        f["first_name"] + " " + f["last_name"],
        f["first_name"] + " " + f["middle_name"] + " " + f["last_name"],
        f["email"],
        f["mrn"],
        f["street_address"],
    ):
        phrases.update(_norm(v) for v in values if len(v.strip()) >= 4)
    digits: set[str] = set()
    for column in ("phone", "ssn"):
        for value in f[column]:
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


def scan_frames(frames: Mapping[str, pd.DataFrame], identifiers: pd.DataFrame) -> list[dict]:
    """Find direct identifiers in every string value of every frame.

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
    phrases, digits = identifier_sets(identifiers)
    found = []
    for label, frame in frames.items():
        for column in _string_columns(frame):
            values = frame[column].dropna().astype(str).unique()
            n = sum(_hits(v, phrases, digits) for v in values)
            if n:
                found.append({"table": label, "column": column, "values": int(n)})
    return found


def _string_columns(frame: pd.DataFrame) -> Iterable[str]:
    return [
        c
        for c in frame.columns
        if frame[c].dtype == object or pd.api.types.is_string_dtype(frame[c].dtype)
    ]
