"""Reading a batch's numbers from a CSV file: the columns, metadata, and errors by row."""

from __future__ import annotations

import pytest

from agents.telephony.batches import MAX_ENTRIES, CsvError, EntrySpec, parse_csv


def test_known_columns_fill_the_entry_and_the_others_its_metadata() -> None:
    parsed = parse_csv(
        "\ufeffTo,end_user,Time_Zone,first_name,note\n"
        "+1 415-555-0171,patient-1,America/New_York,Ana,\n"
        "\n"
        "+14155550172,,,Ben\n"
    )

    assert parsed.entries == [
        EntrySpec("+14155550171", "patient-1", "America/New_York", {"first_name": "Ana"}),
        EntrySpec("+14155550172", "", "", {"first_name": "Ben"}),
    ]
    assert parsed.rows == [2, 4]  # the blank line is skipped, not renumbered


def test_semicolons_separate_cells_as_european_spreadsheets_write_them() -> None:
    parsed = parse_csv("to;first_name\n+14155550171;Ana\n")

    assert parsed.entries == [EntrySpec("+14155550171", metadata={"first_name": "Ana"})]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Row 1 must name the columns"),
        ("number,name\n+14155550171,Ana\n", "Row 1 must name the columns"),
        ("to,name,name\n+14155550171,Ana,Ana\n", "Row 1: the column “name” appears twice."),
        ("to,,name\n+14155550171,,Ana\n", "Row 1: column 2 has no name."),
        ("to\n", "The file has no rows"),
        ("to,name\n+14155550171,Ana\n+14155550172,Ben,extra\n", "Row 3: 3 cells"),
    ],
)
def test_a_file_that_cannot_be_read_says_where(text: str, message: str) -> None:
    with pytest.raises(CsvError) as refused:
        parse_csv(text)

    assert refused.value.messages[0].startswith(message)


def test_a_file_longer_than_a_batch_is_refused() -> None:
    rows = "".join(f"+1415{index:07d}\n" for index in range(MAX_ENTRIES + 1))

    with pytest.raises(CsvError) as refused:
        parse_csv("to\n" + rows)

    assert str(MAX_ENTRIES) in refused.value.messages[0]
