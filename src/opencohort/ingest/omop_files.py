"""What a site may send: the OMOP CDM v5.4 tables and PII files, declared once, and their parsing.

The spec is data: one block of ``name type flags`` lines per table, read into :class:`TableSpec`
objects at import. Types are ``int``, ``float``, ``date``, ``datetime`` and ``text``; flags are
``pk`` (primary key, implies required), ``req`` (NOT NULL), ``fk=<table>.<field>``,
``concept`` (a standard concept id field), ``source=<field>`` (its source concept id field),
``event`` (a clinical event date: checked against birth, death and the submission date) and
``end=<field>`` (this date must not be before <field>). Field names follow the CDM v5.4
Field_Level CSV; CDM v5.3.1 spellings are renamed on read (:data:`V53_RENAMES`), and v5.4-only
optional fields may be absent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from opencohort.errors import InputError
from opencohort.ingest._csv import MalformedFile, TextTable, read_text_csv

_SPEC = {
    "person": """
        person_id int pk
        gender_concept_id int req
        year_of_birth int req
        month_of_birth int
        day_of_birth int
        birth_datetime datetime
        race_concept_id int req
        ethnicity_concept_id int req
        location_id int
        provider_id int
        care_site_id int
        person_source_value text
        gender_source_value text
        gender_source_concept_id int
        race_source_value text
        race_source_concept_id int
        ethnicity_source_value text
        ethnicity_source_concept_id int
    """,
    "observation_period": """
        observation_period_id int pk
        person_id int req fk=person.person_id
        observation_period_start_date date req
        observation_period_end_date date req end=observation_period_start_date
        period_type_concept_id int req
    """,
    "visit_occurrence": """
        visit_occurrence_id int pk
        person_id int req fk=person.person_id
        visit_concept_id int req concept source=visit_source_concept_id
        visit_start_date date req event
        visit_start_datetime datetime
        visit_end_date date req event end=visit_start_date
        visit_end_datetime datetime
        visit_type_concept_id int req
        provider_id int
        care_site_id int
        visit_source_value text
        visit_source_concept_id int
        admitted_from_concept_id int
        admitted_from_source_value text
        discharged_to_concept_id int
        discharged_to_source_value text
        preceding_visit_occurrence_id int
    """,
    "visit_detail": """
        visit_detail_id int pk
        person_id int req fk=person.person_id
        visit_detail_concept_id int req concept source=visit_detail_source_concept_id
        visit_detail_start_date date req event
        visit_detail_start_datetime datetime
        visit_detail_end_date date req event end=visit_detail_start_date
        visit_detail_end_datetime datetime
        visit_detail_type_concept_id int req
        provider_id int
        care_site_id int
        visit_detail_source_value text
        visit_detail_source_concept_id int
        admitted_from_concept_id int
        admitted_from_source_value text
        discharged_to_source_value text
        discharged_to_concept_id int
        preceding_visit_detail_id int
        parent_visit_detail_id int
        visit_occurrence_id int req fk=visit_occurrence.visit_occurrence_id
    """,
    "condition_occurrence": """
        condition_occurrence_id int pk
        person_id int req fk=person.person_id
        condition_concept_id int req concept source=condition_source_concept_id
        condition_start_date date req event
        condition_start_datetime datetime
        condition_end_date date event end=condition_start_date
        condition_end_datetime datetime
        condition_type_concept_id int req
        condition_status_concept_id int
        stop_reason text
        provider_id int
        visit_occurrence_id int fk=visit_occurrence.visit_occurrence_id
        visit_detail_id int
        condition_source_value text
        condition_source_concept_id int
        condition_status_source_value text
    """,
    "drug_exposure": """
        drug_exposure_id int pk
        person_id int req fk=person.person_id
        drug_concept_id int req concept source=drug_source_concept_id
        drug_exposure_start_date date req event
        drug_exposure_start_datetime datetime
        drug_exposure_end_date date req event end=drug_exposure_start_date
        drug_exposure_end_datetime datetime
        verbatim_end_date date
        drug_type_concept_id int req
        stop_reason text
        refills int
        quantity float
        days_supply int
        sig text
        route_concept_id int
        lot_number text
        provider_id int
        visit_occurrence_id int fk=visit_occurrence.visit_occurrence_id
        visit_detail_id int
        drug_source_value text
        drug_source_concept_id int
        route_source_value text
        dose_unit_source_value text
    """,
    "procedure_occurrence": """
        procedure_occurrence_id int pk
        person_id int req fk=person.person_id
        procedure_concept_id int req concept source=procedure_source_concept_id
        procedure_date date req event
        procedure_datetime datetime
        procedure_end_date date event end=procedure_date
        procedure_end_datetime datetime
        procedure_type_concept_id int req
        modifier_concept_id int
        quantity int
        provider_id int
        visit_occurrence_id int fk=visit_occurrence.visit_occurrence_id
        visit_detail_id int
        procedure_source_value text
        procedure_source_concept_id int
        modifier_source_value text
    """,
    "device_exposure": """
        device_exposure_id int pk
        person_id int req fk=person.person_id
        device_concept_id int req concept source=device_source_concept_id
        device_exposure_start_date date req event
        device_exposure_start_datetime datetime
        device_exposure_end_date date event end=device_exposure_start_date
        device_exposure_end_datetime datetime
        device_type_concept_id int req
        unique_device_id text
        production_id text
        quantity int
        provider_id int
        visit_occurrence_id int fk=visit_occurrence.visit_occurrence_id
        visit_detail_id int
        device_source_value text
        device_source_concept_id int
        unit_concept_id int
        unit_source_value text
        unit_source_concept_id int
    """,
    "measurement": """
        measurement_id int pk
        person_id int req fk=person.person_id
        measurement_concept_id int req concept source=measurement_source_concept_id
        measurement_date date req event
        measurement_datetime datetime
        measurement_time text
        measurement_type_concept_id int req
        operator_concept_id int
        value_as_number float
        value_as_concept_id int
        unit_concept_id int
        range_low float
        range_high float
        provider_id int
        visit_occurrence_id int fk=visit_occurrence.visit_occurrence_id
        visit_detail_id int
        measurement_source_value text
        measurement_source_concept_id int
        unit_source_value text
        unit_source_concept_id int
        value_source_value text
        measurement_event_id int
        meas_event_field_concept_id int
    """,
    "observation": """
        observation_id int pk
        person_id int req fk=person.person_id
        observation_concept_id int req concept source=observation_source_concept_id
        observation_date date req event
        observation_datetime datetime
        observation_type_concept_id int req
        value_as_number float
        value_as_string text
        value_as_concept_id int
        qualifier_concept_id int
        unit_concept_id int
        provider_id int
        visit_occurrence_id int fk=visit_occurrence.visit_occurrence_id
        visit_detail_id int
        observation_source_value text
        observation_source_concept_id int
        unit_source_value text
        qualifier_source_value text
        value_source_value text
        observation_event_id int
        obs_event_field_concept_id int
    """,
    "death": """
        person_id int pk fk=person.person_id
        death_date date req
        death_datetime datetime
        death_type_concept_id int
        cause_concept_id int
        cause_source_value text
        cause_source_concept_id int
    """,
    "note": """
        note_id int pk
        person_id int req fk=person.person_id
        note_date date req event
        note_datetime datetime
        note_type_concept_id int req
        note_class_concept_id int req
        note_title text
        note_text text req
        encoding_concept_id int req
        language_concept_id int req
        provider_id int
        visit_occurrence_id int fk=visit_occurrence.visit_occurrence_id
        visit_detail_id int
        note_source_value text
        note_event_id int
        note_event_field_concept_id int
    """,
    "specimen": """
        specimen_id int pk
        person_id int req fk=person.person_id
        specimen_concept_id int req concept source=specimen_source_id
        specimen_type_concept_id int req
        specimen_date date req event
        specimen_datetime datetime
        quantity float
        unit_concept_id int
        anatomic_site_concept_id int
        disease_status_concept_id int
        specimen_source_id text
        specimen_source_value text
        unit_source_value text
        anatomic_site_source_value text
        disease_status_source_value text
    """,
    "location": """
        location_id int pk
        address_1 text
        address_2 text
        city text
        state text
        zip text
        county text
        location_source_value text
        country_concept_id int
        country_source_value text
        latitude float
        longitude float
    """,
    "care_site": """
        care_site_id int pk
        care_site_name text
        place_of_service_concept_id int
        location_id int
        care_site_source_value text
        place_of_service_source_value text
    """,
    "provider": """
        provider_id int pk
        provider_name text
        npi text
        dea text
        specialty_concept_id int
        care_site_id int
        year_of_birth int
        gender_concept_id int
        provider_source_value text
        specialty_source_value text
        specialty_source_concept_id int
        gender_source_value text
        gender_source_concept_id int
    """,
    "pii_name": """
        person_id int pk fk=person.person_id
        first_name text
        middle_name text
        last_name text
    """,
    "pii_email": """
        person_id int req fk=person.person_id
        email text
    """,
    "pii_phone_number": """
        person_id int req fk=person.person_id
        phone_number text
    """,
    "pii_address": """
        person_id int pk fk=person.person_id
        location_id int fk=location.location_id
    """,
    "pii_mrn": """
        person_id int req fk=person.person_id
        mrn text
    """,
}

#: CDM v5.3.1 field names and their v5.4 names, per table.
V53_RENAMES: dict[str, dict[str, str]] = {
    "visit_occurrence": {
        "admitting_source_concept_id": "admitted_from_concept_id",
        "admitting_source_value": "admitted_from_source_value",
        "discharge_to_concept_id": "discharged_to_concept_id",
        "discharge_to_source_value": "discharged_to_source_value",
    },
    "visit_detail": {
        "admitting_source_concept_id": "admitted_from_concept_id",
        "admitting_source_value": "admitted_from_source_value",
        "discharge_to_concept_id": "discharged_to_concept_id",
        "discharge_to_source_value": "discharged_to_source_value",
        "visit_detail_parent_id": "parent_visit_detail_id",
    },
}
#: Files the identity match reads; they never leave ingest.
PII_TABLES = ("pii_name", "pii_email", "pii_phone_number", "pii_address", "pii_mrn")
_TYPES = ("int", "float", "date", "datetime", "text")


@dataclass(frozen=True)
class FieldSpec:
    """One column of a table the sites send."""

    name: str
    type: str
    required: bool = False
    primary_key: bool = False
    foreign_key: tuple[str, str] | None = None
    concept: bool = False
    source_concept: str | None = None
    event: bool = False
    after: str | None = None


@dataclass(frozen=True)
class TableSpec:
    """One table: its fields in CDM order and its primary key (None for tables without one)."""

    name: str
    fields: tuple[FieldSpec, ...]
    primary_key: str | None = field(default=None)

    def field(self, name: str) -> FieldSpec:
        """Return the field called `name`."""
        return next(f for f in self.fields if f.name == name)

    @property
    def names(self) -> tuple[str, ...]:
        """Field names in CDM order."""
        return tuple(f.name for f in self.fields)


def _parse_field(line: str, table: str) -> FieldSpec:
    name, kind, *flags = line.split()
    if kind not in _TYPES:
        raise ValueError(f"spec of {table}.{name}: unknown type {kind!r}")
    opts: dict[str, object] = {}
    for flag in flags:
        key, _, value = flag.partition("=")
        if key == "pk":
            opts.update(primary_key=True, required=True)
        elif key == "req":
            opts["required"] = True
        elif key == "fk":
            ref_table, ref_field = value.split(".")
            opts["foreign_key"] = (ref_table, ref_field)
        elif key == "concept":
            opts["concept"] = True
        elif key == "source":
            opts["source_concept"] = value
        elif key == "event":
            opts["event"] = True
        elif key == "end":
            opts["after"] = value
        else:
            raise ValueError(f"spec of {table}.{name}: unknown flag {flag!r}")
    return FieldSpec(name=name, type=kind, **opts)  # type: ignore[arg-type]


def build_specs(blocks: dict[str, str]) -> dict[str, TableSpec]:
    """Table specs from ``name type flags`` blocks (the format of this module's spec)."""
    specs = {}
    for table, block in blocks.items():
        fields = tuple(_parse_field(line, table) for line in block.strip().splitlines())
        keys = [f.name for f in fields if f.primary_key]
        specs[table] = TableSpec(table, fields, keys[0] if keys else None)
    return specs


#: Every table a site may send, by name (file ``<name>.csv``).
TABLES: dict[str, TableSpec] = build_specs(_SPEC)


@dataclass
class ParsedTable:
    """One submitted file read as text and converted to typed columns.

    ``frame`` holds the typed values (int fields as nullable Int64, float fields as float64,
    date and datetime fields as Int64 day numbers since 1970-01-01, text as object);
    ``bad_type`` maps a typed field to the mask of cells that are present but not of its type;
    ``lines`` gives the 1-based line each row starts on; ``warnings`` lists unknown columns.
    """

    spec: TableSpec
    file: str
    text: pa.Table
    frame: pd.DataFrame
    bad_type: dict[str, np.ndarray]
    lines: np.ndarray
    warnings: list[str]

    @property
    def name(self) -> str:
        """Table name."""
        return self.spec.name

    def __len__(self) -> int:
        return len(self.frame)


_INT = r"^\s*[-+]?\d{1,18}(\.0*)?\s*$"
_FLOAT = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"
_DATETIME = r"^\s*\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[-+]\d{2}:?\d{2})?)?\s*$"


def _as_int(col: pa.ChunkedArray) -> tuple[pd.Series, np.ndarray]:
    try:  # fast path: every present value is a plain integer
        values = pc.cast(col, pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    else:
        ok = pc.is_valid(values)
        return values.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get), ok
    ok = pc.match_substring_regex(col, _INT)
    clean = pc.replace_substring_regex(pc.utf8_trim_whitespace(col), r"\.0*$", "")
    values = pc.cast(pc.if_else(ok, clean, pa.scalar(None, pa.string())), pa.int64())
    return values.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get), ok


def _as_float(col: pa.ChunkedArray) -> tuple[pd.Series, np.ndarray]:
    try:  # fast path: every present value is a plain finite number (no nan, inf or spaces)
        values = pc.cast(col, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    else:
        if pc.all(pc.is_finite(values)).as_py() is not False:
            return values.to_pandas(), pc.is_valid(values)
    ok = pc.match_substring_regex(col, _FLOAT)
    values = pc.cast(pc.if_else(ok, pc.utf8_trim_whitespace(col), None), pa.float64())
    return values.to_pandas(), ok


def _as_days(col: pa.ChunkedArray, pattern: str) -> tuple[pd.Series, np.ndarray]:
    """Day numbers of YYYY-MM-DD values; a time after the date is allowed and dropped."""
    try:  # fast path: every present value is a valid plain YYYY-MM-DD date
        days = pc.cast(pc.cast(col, pa.date32()), pa.int32())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    else:
        as_int = days.to_pandas(types_mapper={pa.int32(): pd.Int64Dtype()}.get).astype("Int64")
        return as_int, pc.is_valid(days)
    shaped = pc.match_substring_regex(col, pattern)
    head = pc.utf8_slice_codeunits(pc.utf8_trim_whitespace(col), 0, 10)
    parsed = pc.strptime(
        pc.if_else(shaped, head, None), format="%Y-%m-%d", unit="s", error_is_null=True
    )
    # strptime rolls an impossible day over (1900-02-29 becomes 1900-03-01): refuse it
    ok = pc.and_(
        shaped, pc.fill_null(pc.equal(pc.strftime(parsed, format="%Y-%m-%d"), head), False)
    )
    days = pc.cast(pc.cast(parsed, pa.date32()), pa.int32())
    return days.to_pandas(types_mapper={pa.int32(): pd.Int64Dtype()}.get).astype("Int64"), ok


def _convert(kind: str, col: pa.ChunkedArray) -> tuple[pd.Series, np.ndarray | None]:
    if kind == "text":
        return col.to_pandas(), None
    if kind == "int":
        values, ok = _as_int(col)
    elif kind == "float":
        values, ok = _as_float(col)
    else:
        values, ok = _as_days(col, _DATETIME)
    present = pc.is_valid(col)
    bad = pc.and_(present, pc.invert(pc.fill_null(ok, False)))
    return values, np.asarray(bad.to_numpy(zero_copy_only=False), dtype=bool)


def parse_table(data: bytes, table: str, *, file: str) -> ParsedTable:
    """Parse one submitted CSV file of CDM (v5.4 or v5.3.1) table `table`.

    Parameters
    ----------
    data
        The file's bytes, exactly as stored.
    table
        Table name, a key of :data:`TABLES`.
    file
        Name used in messages (e.g. ``"site_001/person.csv"``).

    Returns
    -------
    ParsedTable
        Typed columns for every field of the spec (absent optional fields are all missing);
        cells of the wrong type are missing in ``frame`` and flagged in ``bad_type``.

    Raises
    ------
    MalformedFile
        If the bytes are not UTF-8, a line has the wrong number of fields, a quote is not
        closed, or a required field is missing from the header; each problem names the file,
        line and field.
    """
    return parse_with_spec(data, TABLES[table], file=file, renames=V53_RENAMES.get(table, {}))


def parse_with_spec(
    data: bytes, spec: TableSpec, *, file: str, renames: dict[str, str] | None = None
) -> ParsedTable:
    """Parse CSV bytes against any table spec (as :func:`parse_table`, which uses this)."""
    return parse_text(read_text_csv(data, file=file), spec, file=file, renames=renames)


def parse_text(
    text: TextTable, spec: TableSpec, *, file: str, renames: dict[str, str] | None = None
) -> ParsedTable:
    """Convert a table already read as text (CSV or FHIR) to the spec's typed columns."""
    renames = renames or {}
    names = [renames.get(n, n) for n in text.columns]
    missing = [f.name for f in spec.fields if f.required and f.name not in names]
    if missing:
        raise MalformedFile(
            [
                InputError(
                    f"required column missing from the header; expected {', '.join(spec.names)}",
                    file=file,
                    line=1,
                    field=name,
                )
                for name in missing
            ]
        )
    columns = dict(zip(names, text.data.columns, strict=True))
    warnings = [f"unknown column {n!r} ignored" for n in names if n not in spec.names]
    n = text.data.num_rows
    frame, bad_type = {}, {}
    for f in spec.fields:
        col = columns.get(f.name)
        if col is None:
            col = pa.chunked_array([pa.nulls(n, pa.string())])
        frame[f.name], bad = _convert(f.type, col)
        if bad is not None and bad.any():
            bad_type[f.name] = bad
    return ParsedTable(
        spec=spec,
        file=file,
        text=text.data.rename_columns(names),
        frame=pd.DataFrame(frame),
        bad_type=bad_type,
        lines=text.lines,
        warnings=warnings,
    )
