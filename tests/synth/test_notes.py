"""Tests of templated clinical notes."""

from __future__ import annotations

import numpy as np

from opencohort.synth.notes import IDENTIFIER_KINDS, build_notes


def notes(n: int, rate: float, seed: int = 0):
    first = np.array([f"Ann{i}" for i in range(n)], dtype=object)
    last = np.array([f"Lee{i}" for i in range(n)], dtype=object)
    phone = np.array([f"(555) 010-{i % 10000:04d}" for i in range(n)], dtype=object)
    mrn = np.array([f"MRN{i:07d}" for i in range(n)], dtype=object)
    kinds = np.resize(np.array(["OP", "ER", "IP"], dtype=object), n)
    assessment = np.full(n, "Type 2 diabetes mellitus without complications", dtype=object)
    out = build_notes(kinds, assessment, first, last, phone, mrn, np.random.default_rng(seed),
                      identifier_rate=rate)  # fmt: skip
    return out, (first, last, phone, mrn)


def test_build_notes__identifier_rate_and_content() -> None:
    n, rate = 4000, 0.1
    (title, text, quoted), (first, last, phone, mrn) = notes(n, rate)
    share = (quoted != "").mean()
    assert abs(share - rate) < 4 * np.sqrt(rate * (1 - rate) / n)
    assert set(quoted) <= {"", *IDENTIFIER_KINDS}
    for i in range(n):
        has = {
            "name": f"{first[i]} {last[i]}" in text[i],
            "phone": phone[i] in text[i],
            "mrn": mrn[i] in text[i],
        }
        assert [k for k, v in has.items() if v] == ([quoted[i]] if quoted[i] else [])
    assert set(title) == {"Progress note", "Emergency department note", "Discharge summary"}
    assert all(t.startswith(h) for t, h in zip(text, title, strict=True))


def test_build_notes__deterministic_and_empty() -> None:
    first, _ = notes(50, 0.5, seed=3)
    second, _ = notes(50, 0.5, seed=3)
    assert all((a == b).all() for a, b in zip(first, second, strict=True))
    (title, text, quoted), _ = notes(0, 0.5)
    assert len(title) == len(text) == len(quoted) == 0
