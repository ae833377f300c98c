"""Generated recipient lists: the file on disk says what the returned facts say."""

from __future__ import annotations

import csv
import unicodedata
from pathlib import Path

import pytest
from email_validator import EmailNotValidError, validate_email

from campaigns.lists.sample_lists import (
    DEMO_LIST,
    EXTRA_COLUMNS,
    SampleListFacts,
    write_demo_list,
    write_sample_list,
)


def _records(path: Path) -> list[tuple[int, list[str]]]:
    """(first physical line, values) of every record, the header included."""
    with path.open(encoding="utf-8", newline="") as csv_file:
        reader = csv.reader(csv_file)
        records = []
        next_line = 1
        for values in reader:
            records.append((next_line, values))
            next_line = reader.line_num + 1
    return records


def _is_valid(address: str) -> bool:
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


def _check_facts(facts: SampleListFacts) -> None:
    records = _records(facts.path)[1:]
    assert len(records) == facts.rows
    invalid = set(facts.invalid_lines)
    duplicate = set(facts.duplicate_lines)
    seen: list[str] = []
    for line, values in records:
        address = values[0]
        if line in invalid:
            assert not _is_valid(address), f"line {line}: {address!r} is valid"
            continue
        assert _is_valid(address), f"line {line}: {address!r} is invalid"
        key = address.lower()
        if line in duplicate:
            assert key in seen and address not in seen, f"line {line}: {address!r}"
        else:
            assert key not in seen, f"line {line}: {address!r} repeats without being listed"
            seen.append(key)
    assert seen == facts.valid_unique_emails
    assert invalid <= {line for line, _ in records}
    assert duplicate <= {line for line, _ in records}


def test_facts_describe_the_file(tmp_path: Path):
    facts = write_sample_list(tmp_path / "list.csv", 5_000, invalid_ratio=0.1, duplicate_ratio=0.1)

    assert facts.rows == 5_000
    assert 400 < len(facts.invalid_lines) < 600
    assert 350 < len(facts.duplicate_lines) < 550
    _check_facts(facts)


def test_multi_line_values_shift_the_line_numbers_in_the_facts(tmp_path: Path):
    facts = write_sample_list(tmp_path / "list.csv", 2_000, extra_columns=5)

    records = _records(facts.path)
    assert records[-1][0] > facts.rows + 1  # some records span two lines
    _check_facts(facts)


def test_same_seed_same_bytes_and_another_seed_another_list(tmp_path: Path):
    first = write_sample_list(tmp_path / "a.csv", 1_000, seed=3)
    second = write_sample_list(tmp_path / "b.csv", 1_000, seed=3)
    third = write_sample_list(tmp_path / "c.csv", 1_000, seed=4)

    assert first.path.read_bytes() == second.path.read_bytes()
    assert (first.invalid_lines, first.duplicate_lines) == (
        second.invalid_lines,
        second.duplicate_lines,
    )
    assert first.path.read_bytes() != third.path.read_bytes()


def test_columns_and_extra_columns(tmp_path: Path):
    plain = write_sample_list(tmp_path / "plain.csv", 10)
    padded = write_sample_list(tmp_path / "padded.csv", 10, extra_columns=7)

    assert _records(plain.path)[0][1] == ["Email", "First Name", "Last Name", "City", "Plan"]
    header = _records(padded.path)[0][1]
    assert header[5:] == [*EXTRA_COLUMNS, "Extra 6", "Extra 7"]
    assert all(len(values) == 12 for _, values in _records(padded.path))


def test_names_come_from_several_scripts(tmp_path: Path):
    facts = write_sample_list(tmp_path / "list.csv", 2_000)

    scripts = set()
    for _, values in _records(facts.path)[1:]:
        for character in values[1] + values[2]:
            name = unicodedata.name(character, "")
            scripts.update(
                script
                for script in ("CYRILLIC", "GREEK", "CJK", "HANGUL", "ARABIC", "DEVANAGARI")
                if script in name
            )
            if name.startswith("LATIN") and "WITH" in name:
                scripts.add("LATIN WITH ACCENTS")
    assert scripts == {
        "CYRILLIC",
        "GREEK",
        "CJK",
        "HANGUL",
        "ARABIC",
        "DEVANAGARI",
        "LATIN WITH ACCENTS",
    }


def test_every_first_name_city_and_plan_is_filled(tmp_path: Path):
    facts = write_sample_list(tmp_path / "list.csv", 1_000)

    for _, values in _records(facts.path)[1:]:
        assert all(values[index] for index in (1, 3, 4))


def test_no_rows_gives_only_the_header(tmp_path: Path):
    facts = write_sample_list(tmp_path / "empty.csv", 0)

    assert facts.path.read_text(encoding="utf-8") == "Email,First Name,Last Name,City,Plan\n"
    assert (facts.valid_unique_emails, facts.invalid_lines, facts.duplicate_lines) == ([], [], [])


def test_ratios_of_zero_give_only_valid_unique_rows(tmp_path: Path):
    facts = write_sample_list(tmp_path / "list.csv", 500, invalid_ratio=0, duplicate_ratio=0)

    assert len(facts.valid_unique_emails) == 500
    assert facts.invalid_lines == facts.duplicate_lines == []


@pytest.mark.parametrize(
    "arguments",
    [dict(rows=-1), dict(rows=1, invalid_ratio=1.5), dict(rows=1, extra_columns=-1)],
)
def test_bad_arguments_are_refused(tmp_path: Path, arguments: dict):
    with pytest.raises(ValueError):
        write_sample_list(tmp_path / "list.csv", **arguments)


def test_the_shipped_demo_list_is_the_generator_output(tmp_path: Path):
    facts = write_demo_list(tmp_path / "recipients.csv")

    assert DEMO_LIST.read_bytes() == facts.path.read_bytes()
    assert 250 <= len(facts.valid_unique_emails) < facts.rows
    assert facts.invalid_lines and facts.duplicate_lines
    assert _records(DEMO_LIST)[0][1][-1] == "Company"
