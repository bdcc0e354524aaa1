"""Parsing submitted files: malformed input names file, line and field; never crashes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opencohort.errors import InputError
from opencohort.ingest import MalformedFile, parse_table
from opencohort.ingest._csv import read_text_csv
from opencohort.ingest.omop_files import build_specs, parse_with_spec

HEADER = "pii_name_header"
NAME_HEAD = "person_id,first_name,middle_name,last_name\n"


def _names(n: int) -> list[str]:
    return [f"{i},First{i},,Last{i}\n" for i in range(1, n + 1)]


def test_parse_table__wrong_column_count_names_line_and_field():
    lines = _names(30)
    lines[15] = "16,First16,Last16\n"  # line 17 of the file (header is line 1)
    with pytest.raises(MalformedFile) as info:
        parse_table((NAME_HEAD + "".join(lines)).encode(), "pii_name", file="site_001/pii_name.csv")
    err = info.value
    assert (err.file, err.line, err.field) == ("site_001/pii_name.csv", 17, "last_name")
    assert "site_001/pii_name.csv, line 17, field last_name" in str(err)


def test_parse_table__every_bad_line_listed():
    lines = _names(30)
    lines[3] = "4,a\n"
    lines[20] = "21,a,b,c,d\n"
    with pytest.raises(MalformedFile) as info:
        parse_table((NAME_HEAD + "".join(lines)).encode(), "pii_name", file="f.csv")
    assert [(p.line, p.field) for p in info.value.problems] == [
        (5, "middle_name"),
        (22, "(column 5)"),
    ]


def test_parse_table__bad_utf8_names_line_and_field():
    data = (NAME_HEAD + "".join(_names(9))).encode() + b"10,Jos\xe9,,Last\n"
    with pytest.raises(MalformedFile) as info:
        parse_table(data, "pii_name", file="f.csv")
    assert (info.value.line, info.value.field) == (11, "first_name")
    assert "UTF-8" in str(info.value)


def test_parse_table__truncated_last_line():
    data = (NAME_HEAD + "".join(_names(5)) + '6,"Fir').encode()
    with pytest.raises(MalformedFile) as info:
        parse_table(data, "pii_name", file="f.csv")
    assert info.value.line == 7
    assert info.value.field == "first_name"


def test_parse_table__non_date_is_flagged_with_its_line():
    rows = ["1,2020-01-01", "2,2020-13-01", "3,yesterday", "4,", "5,2021-02-03 00:00:00"]
    data = ("person_id,death_date\n" + "".join(r + "\n" for r in rows)).encode()
    table = parse_table(data, "death", file="death.csv")
    bad = table.bad_type["death_date"]
    assert table.lines[bad].tolist() == [3, 4]
    assert table.frame["death_date"].isna().tolist() == [False, True, True, True, False]


def test_parse_with_spec__fast_and_careful_paths_agree():
    """Plain columns take Arrow's casts; any odd value sends a column down the regex path."""
    spec = build_specs({"t": "id int pk\nx float\nd date"})["t"]
    plain = parse_with_spec(b"id,x,d\n1,1.5,2020-01-02\n2,,2021-12-31\n", spec, file="t.csv")
    assert plain.bad_type == {}
    assert plain.frame["x"].tolist()[0] == 1.5 and np.isnan(plain.frame["x"].tolist()[1])
    assert plain.frame["d"].tolist() == [18263, 18992]
    rows = b"1, 1.5 ,2020-01-02 10:00\n2,nan,1900-02-29\n3,inf,2021-02-30\n4,-2e3,2000-02-29\n"
    odd = parse_with_spec(b"id,x,d\n" + rows, spec, file="t.csv")
    assert odd.lines[odd.bad_type["x"]].tolist() == [3, 4]  # nan and inf are not numbers
    assert odd.lines[odd.bad_type["d"]].tolist() == [3, 4]  # no 29 Feb 1900, no 30 Feb
    assert odd.frame["x"].tolist()[::3] == [1.5, -2000.0]
    assert odd.frame["d"].tolist()[::3] == [18263, 11016]


def test_parse_table__cdm_v53_names_and_missing_optional_columns():
    data = (
        b"visit_occurrence_id,person_id,visit_concept_id,visit_start_date,visit_end_date,"
        b"visit_type_concept_id,admitting_source_concept_id,DISCHARGE_TO_CONCEPT_ID\n"
        b"1,2,9201,2020-01-01,2020-01-03,32817,8870,8536\n"
    )
    table = parse_table(data, "visit_occurrence", file="v.csv")
    assert table.frame.loc[0, "admitted_from_concept_id"] == 8870
    assert table.frame.loc[0, "discharged_to_concept_id"] == 8536
    assert table.frame["preceding_visit_occurrence_id"].isna().all()
    assert table.warnings == []


def test_parse_table__missing_required_column():
    with pytest.raises(MalformedFile) as info:
        parse_table(b"person_id,death_datetime\n1,\n", "death", file="death.csv")
    assert (info.value.line, info.value.field) == (1, "death_date")


def test_read_text_csv__quoted_newlines_keep_line_numbers():
    data = b'a,b\n1,"x\ny"\n2,z\n'
    table = read_text_csv(data, file="f.csv")
    assert table.data.column("b").to_pylist() == ["x\ny", "z"]
    assert table.lines.tolist() == [2, 4]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_read_text_csv__arbitrary_bytes_never_crash(data):
    try:
        table = read_text_csv(data, file="f.csv")
    except InputError as exc:
        assert exc.line is not None and exc.line >= 1
        assert exc.file == "f.csv"
    else:
        assert table.data.num_columns == len(table.columns)
        assert len(table.lines) == table.data.num_rows


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(["1", "2", "", "x", '"', ",", "\n", "\r\n", "é", "2020-01-01"]), max_size=40
    )
)
def test_parse_table__csv_like_text_never_crashes(pieces):
    data = ("person_id,death_date\n" + "".join(pieces)).encode()
    try:
        table = parse_table(data, "death", file="d.csv")
    except InputError as exc:
        assert exc.line is not None
    else:
        assert len(table.frame) == len(table.lines)
