"""Random-number helpers shared by the synthetic participant modules."""

from __future__ import annotations

import numpy as np

from opencohort.synth.models import SynthConfig

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def batch_rng(config: SynthConfig, stream: int, index: int) -> np.random.Generator:
    """Return the generator of one (seed, stream, batch) triple."""
    return np.random.default_rng([config.seed, stream, index])


def batch_index(person_index: np.ndarray, config: SynthConfig) -> int:
    """Return the batch index a frame belongs to, from its first person index (0 if empty)."""
    return int(person_index[0]) // config.batch_size if len(person_index) else 0


def mix64(values: np.ndarray) -> np.ndarray:
    """Return the splitmix64 finaliser of unsigned 64-bit values (a fast integer hash)."""
    z = values.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return (z ^ (z >> np.uint64(31))) & _MASK64


def hash_uniform(seed: int, stream: int, keys: np.ndarray) -> np.ndarray:
    """Return uniforms in [0, 1) that depend only on (seed, stream, key), not on batching."""
    salt = mix64(np.array([seed * 1_000_003 + stream], dtype=np.uint64))[0]
    with np.errstate(over="ignore"):
        hashed = mix64(keys.astype(np.uint64) ^ salt)
    return (hashed >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def categorical(uniforms: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Return category codes for uniforms given one probability row or one row per draw.

    Parameters
    ----------
    uniforms
        Uniform draws in [0, 1), one per row.
    probs
        Either a vector of k probabilities shared by all draws or an (n, k) matrix.

    Returns
    -------
    numpy.ndarray
        int64 codes in 0..k-1.
    """
    cum = np.cumsum(probs, axis=-1)
    cum = cum / cum[..., -1:]
    if cum.ndim == 1:
        return np.minimum(np.searchsorted(cum, uniforms, side="right"), len(cum) - 1)
    return np.minimum((uniforms[:, None] >= cum).sum(axis=1), cum.shape[1] - 1)


def digits(values: np.ndarray, width: int) -> np.ndarray:
    """Format non-negative integers as zero-padded decimal strings of a fixed width."""
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    table = (np.asarray(values, dtype=np.int64)[:, None] // powers) % 10
    raw = np.ascontiguousarray((table + ord("0")).astype(np.uint8))
    return raw.view(f"S{width}").ravel().astype(f"U{width}").astype(object)


def day_numbers(dates: np.ndarray) -> np.ndarray:
    """Return float days since 1970-01-01 for datetime64 values (NaN for NaT)."""
    days = np.asarray(dates, dtype="datetime64[D]")
    out = days.astype(np.int64).astype(np.float64)
    out[np.isnat(days)] = np.nan
    return out


def to_dates(days: np.ndarray) -> np.ndarray:
    """Return datetime64[ns] values at midnight for float day numbers (NaN becomes NaT)."""
    out = np.full(len(days), np.datetime64("NaT"), dtype="datetime64[ns]")
    ok = ~np.isnan(days)
    out[ok] = days[ok].astype(np.int64).astype("datetime64[D]").astype("datetime64[ns]")
    return out
