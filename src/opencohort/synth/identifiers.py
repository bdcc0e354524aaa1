"""Program identifiers and fake direct identifiers (names, addresses, phones, SSNs, MRNs).

Names and street words are sampled, vectorised, from Faker's en_US (and es_MX surname) word
lists with their published frequency weights; Faker itself is never called per row.
"""

from __future__ import annotations

import re
from functools import cache

import numpy as np
import pandas as pd
from faker.providers.address.en_US import Provider as _AddressProvider
from faker.providers.internet.en_US import Provider as _InternetProvider
from faker.providers.person.en_US import Provider as _PersonProvider
from faker.providers.person.es_MX import Provider as _SpanishPersonProvider

from opencohort.synth._random import digits, mix64

#: Participant ids are "P" plus this many digits.
PARTICIPANT_ID_DIGITS = 9
_ID_SPACE = 10**PARTICIPANT_ID_DIGITS
_HALF_BITS = 15  # Feistel network on 30 bits (2**30 > 10**9), cycle-walked into the id space
_HALF_MASK = np.uint64((1 << _HALF_BITS) - 1)
_ROUNDS = 4

#: Share of Hispanic participants given a Spanish-language surname.
HISPANIC_SPANISH_SURNAME = 0.7
#: Email domains beyond Faker's en_US free-mail list.
_EXTRA_EMAIL_DOMAINS = ("outlook.com", "aol.com", "icloud.com", "comcast.net")
_NAME_COLUMNS = [
    "first_name",
    "middle_name",
    "last_name",
    "street_address",
    "city",
    "phone",
    "email",
    "ssn",
    "mrn",
]


def scramble(values: np.ndarray, *, key: int) -> np.ndarray:
    """Map integers in [0, 10**9) to [0, 10**9) by a keyed bijection.

    Parameters
    ----------
    values
        Non-negative integers below 10**9.
    key
        Any integer; each key gives a different permutation.

    Returns
    -------
    numpy.ndarray
        int64 images, distinct for distinct inputs.

    Notes
    -----
    1. A 4-round Feistel network on 30 bits, whose round function is a splitmix64 hash of the
       right half and the round key, permutes [0, 2**30).
    2. Cycle walking re-applies it to any image at or above 10**9 until it lands inside, which
       keeps the map a bijection on [0, 10**9).
    """
    out = np.asarray(values, dtype=np.uint64).copy()
    if out.size and int(out.max()) >= _ID_SPACE:
        raise ValueError(f"scramble: values must be below {_ID_SPACE}")
    round_keys = mix64(np.arange(_ROUNDS, dtype=np.uint64) + np.uint64(key % (1 << 62) * 8))
    todo = np.ones(out.shape, dtype=bool)
    while todo.any():
        x = out[todo]
        left, right = x >> np.uint64(_HALF_BITS), x & _HALF_MASK
        for round_key in round_keys:
            left, right = right, left ^ (mix64(right ^ round_key) & _HALF_MASK)
        out[todo] = (left << np.uint64(_HALF_BITS)) | right
        todo = out >= np.uint64(_ID_SPACE)
    return out.astype(np.int64)


def participant_ids(person_index: np.ndarray, *, seed: int) -> np.ndarray:
    """Return "P" + 9-digit ids, a seed-keyed bijection of global person indexes."""
    return "P" + digits(scramble(person_index, key=seed), PARTICIPANT_ID_DIGITS)


@cache
def _weighted_words(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Return (words, cumulative probabilities) of one Faker word list."""
    sources = {
        "female": _PersonProvider.first_names_female,
        "male": _PersonProvider.first_names_male,
        "other": _PersonProvider.first_names_nonbinary,
        "last": _PersonProvider.last_names,
        "spanish_last": dict.fromkeys(_SpanishPersonProvider.last_names, 1.0),
        "street_suffix": dict.fromkeys(_AddressProvider.street_suffixes, 1.0),
        "email_domain": dict.fromkeys(
            tuple(_InternetProvider.free_email_domains) + _EXTRA_EMAIL_DOMAINS, 1.0
        ),
    }
    words = np.array(list(sources[kind].keys()), dtype=object)
    weights = np.array(list(sources[kind].values()), dtype=np.float64)
    cum = np.cumsum(weights)
    return words, cum / cum[-1]


def _pick(rng: np.random.Generator, kind: str, n: int) -> np.ndarray:
    words, cum = _weighted_words(kind)
    return words[np.minimum(np.searchsorted(cum, rng.random(n), side="right"), len(words) - 1)]


def _first_names(rng: np.random.Generator, sex_at_birth: np.ndarray) -> np.ndarray:
    names = _pick(rng, "other", len(sex_at_birth))
    for sex, kind in (("female", "female"), ("male", "male")):
        rows = sex_at_birth == sex
        names[rows] = _pick(rng, kind, int(rows.sum()))
    return names


def _email_local(name: np.ndarray) -> np.ndarray:
    plain = pd.Series(name, dtype=object).str.lower().str.normalize("NFKD")
    return (
        plain.str.encode("ascii", "ignore")
        .str.decode("ascii")
        .str.replace(re.compile(r"[^a-z]"), "", regex=True)
        .to_numpy(dtype=object)
    )


def direct_identifiers(
    rng: np.random.Generator,
    *,
    sex_at_birth: np.ndarray,
    race_ethnicity: np.ndarray,
    city: np.ndarray,
    site_number: np.ndarray,
    person_index: np.ndarray,
    seed: int,
) -> pd.DataFrame:
    """Return fake but realistic direct identifiers, one row per person.

    Parameters
    ----------
    rng
        Generator of this batch's identifier stream.
    sex_at_birth, race_ethnicity
        Frame categories; first names follow sex loosely, surnames race loosely.
    city
        Each person's city (from the home ZIP).
    site_number
        0-based site position, which selects the MRN format.
    person_index
        Global person indexes (MRNs are a per-site bijection of them).
    seed
        Program seed.

    Returns
    -------
    pandas.DataFrame
        Columns first_name, middle_name, last_name, street_address, city, phone, email, ssn
        (area 900-999, never issued) and mrn.
    """
    n = len(sex_at_birth)
    first = _first_names(rng, sex_at_birth)
    middle = _first_names(rng, sex_at_birth)
    middle[rng.random(n) < 0.25] = ""
    last = _pick(rng, "last", n)
    spanish = (race_ethnicity == "hispanic") & (rng.random(n) < HISPANIC_SPANISH_SURNAME)
    last[spanish] = _pick(rng, "spanish_last", int(spanish.sum()))

    street_word = np.where(rng.random(n) < 0.5, _pick(rng, "last", n), _pick(rng, "male", n))
    width = rng.choice(np.array([3, 4, 5]), size=n, p=[0.3, 0.5, 0.2])
    number = rng.integers(1, 10**width, dtype=np.int64)
    street = (
        number.astype(str).astype(object) + " " + street_word + " " + _pick(rng, "street_suffix", n)
    )
    apartment = rng.random(n) < 0.15
    unit = np.where(rng.random(n) < 0.7, " Apt. ", " Suite ").astype(object)
    street[apartment] = (
        street[apartment] + unit[apartment] + digits(rng.integers(100, 1000, n), 3)[apartment]
    )

    area = rng.integers(201, 990, n)
    area = np.where(area % 100 == 11, area + 1, area)  # N11 codes are service codes
    phone = (
        "("
        + digits(area, 3)
        + ") "
        + digits(rng.integers(200, 1000, n), 3)
        + "-"
        + digits(rng.integers(0, 10_000, n), 4)
    )

    separator = np.array([".", "_", ""], dtype=object)[rng.integers(0, 3, n)]
    suffix = np.where(rng.random(n) < 0.4, rng.integers(1, 100, n).astype(str), "").astype(object)
    email = (
        _email_local(first)
        + separator
        + _email_local(last)
        + suffix
        + "@"
        + _pick(rng, "email_domain", n)
    )

    ssn = (
        digits(rng.integers(900, 1000, n), 3)
        + "-"
        + digits(rng.integers(1, 100, n), 2)
        + "-"
        + digits(rng.integers(1, 10_000, n), 4)
    )
    mrn = _mrns(site_number, person_index, seed)
    values = [first, middle, last, street, city, phone, email, ssn, mrn]
    return pd.DataFrame(dict(zip(_NAME_COLUMNS, values, strict=True)))


def _mrns(site_number: np.ndarray, person_index: np.ndarray, seed: int) -> np.ndarray:
    """Return site-specific MRNs: a 3-letter site prefix and a per-site scrambled number."""
    out = np.empty(len(site_number), dtype=object)
    for site in np.unique(site_number):
        rows = site_number == site
        prefix = "".join(chr(65 + (int(site) // 26**k) % 26) for k in (2, 1, 0))
        number = scramble(person_index[rows], key=seed * 1009 + int(site) + 1)
        out[rows] = prefix + digits(number, PARTICIPANT_ID_DIGITS)
    return out
