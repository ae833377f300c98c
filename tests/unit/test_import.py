"""Recipient import against real databases: what the report says and what the list holds.

The ``database`` fixture (tests/conftest.py) is a fresh SQLite file per test, and a fresh
PostgreSQL database too when EDM_TEST_DATABASE_URL is set.
"""

from __future__ import annotations

import codecs
import csv
import json
import random
from pathlib import Path

import pytest
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select

from campaigns.core.errors import CsvImportError, InputError
from campaigns.core.models import Recipient, RecipientList, Suppression
from campaigns.core.storage import Database
from campaigns.lists import fields as fields_module
from campaigns.lists.csv_source import detect_layout
from campaigns.lists.fields import find_email_column, normalise_email, normalise_field_name
from campaigns.lists.importer import ImportReport, RejectedRow, import_recipients
from campaigns.lists.sample_lists import write_sample_list


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def _stored(database: Database, list_name: str = "main") -> dict[str, tuple[str, dict[str, str]]]:
    """email_key -> (email, fields) of the list's recipients."""
    with database.session() as session:
        rows = session.execute(
            select(Recipient.email_key, Recipient.email, Recipient.fields)
            .join(RecipientList, RecipientList.id == Recipient.list_id)
            .where(RecipientList.name == list_name)
        )
        return {key: (email, fields) for key, email, fields in rows}


def _field_names(database: Database, list_name: str = "main") -> list[str]:
    with database.session() as session:
        return session.scalars(
            select(RecipientList.field_names).where(RecipientList.name == list_name)
        ).one()


def _nothing_written(database: Database) -> bool:
    with database.session() as session:
        lists = session.scalar(select(func.count()).select_from(RecipientList))
        recipients = session.scalar(select(func.count()).select_from(Recipient))
    return lists == 0 and recipients == 0


def _counts(report: ImportReport) -> dict[str, int]:
    names = ("imported", "updated", "duplicates", "rejected", "suppressed")
    return {name: getattr(report, name) for name in names}


# --- encodings and delimiters -------------------------------------------------------------


def test_utf8_with_bom_imports_with_a_clean_first_header(tmp_path: Path, database: Database):
    path = tmp_path / "bom.csv"
    path.write_bytes(codecs.BOM_UTF8 + "Email,Name\nzoë@example.com,Zoë\n".encode())

    report = import_recipients(database, path, "main")

    assert _counts(report) == dict(imported=1, updated=0, duplicates=0, rejected=0, suppressed=0)
    assert _stored(database) == {
        "zoë@example.com": ("zoë@example.com", {"email": "zoë@example.com", "name": "Zoë"})
    }
    assert _field_names(database) == ["email", "name"]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be"])
def test_utf16_with_bom_imports(tmp_path: Path, database: Database, encoding: str):
    moscow, athens = "Москва", "Αθήνα"
    text = f"Email\tCity\nivan@example.com\t{moscow}\nnikos@example.com\t{athens}\n"
    data = text.encode(encoding)
    if encoding == "utf-16-be":
        data = codecs.BOM_UTF16_BE + data
    path = tmp_path / "utf16.csv"
    path.write_bytes(data)

    report = import_recipients(database, path, "main")

    assert report.imported == 2
    assert _stored(database)["ivan@example.com"][1]["city"] == moscow
    assert _stored(database)["nikos@example.com"][1]["city"] == athens


@pytest.mark.parametrize("delimiter", [";", "\t", "|", ","])
def test_delimiter_is_detected(tmp_path: Path, database: Database, delimiter: str):
    path = tmp_path / "list.csv"
    with path.open("w", encoding="utf-8", newline="") as csv_file:
        writer = csv.writer(csv_file, delimiter=delimiter, lineterminator="\n")
        # Commas inside values must not fool the detection of another delimiter.
        writer.writerow(["Email", "Name", "City"])
        writer.writerow(["a@example.com", "Smith, Jr.", "Lyon"])
        writer.writerow(["b@example.com", "O, Brien", "Cork, IE"])

    assert detect_layout(path).delimiter == delimiter
    report = import_recipients(database, path, "main")

    assert report.imported == 2
    assert _stored(database)["a@example.com"][1] == {
        "email": "a@example.com",
        "name": "Smith, Jr.",
        "city": "Lyon",
    }


def test_latin1_file_fails_without_encoding_and_imports_with_it(tmp_path: Path, database: Database):
    path = _write(tmp_path / "latin1.csv", "email,name\nrene@example.com,René\n", "latin-1")

    with pytest.raises(CsvImportError) as failure:
        import_recipients(database, path, "main")
    message = str(failure.value)
    offset = path.read_bytes().index("é".encode("latin-1"))
    assert message.startswith(f"{path}: line 2 (byte offset {offset}): cannot decode as utf-8")
    assert "--encoding" in message and "\n" not in message

    report = import_recipients(database, path, "main", encoding="latin-1")
    assert report.imported == 1
    assert _stored(database)["rene@example.com"][1]["name"] == "René"


def test_invalid_utf8_deep_in_the_file_writes_nothing(tmp_path: Path, database: Database):
    lines = ["email,name"] + [f"user{index}@example.com,Name {index}" for index in range(5000)]
    good = ("\n".join(lines) + "\n").encode()
    path = tmp_path / "broken.csv"
    path.write_bytes(good + b"late@example.com,caf\xe9\n" + b"last@example.com,x\n")

    with pytest.raises(CsvImportError) as failure:
        # Small chunks: several have been inserted before the bad byte is reached.
        import_recipients(database, path, "main", chunk_rows=500)

    message = str(failure.value)
    assert message.startswith(f"{path}: line 5002 (byte offset {len(good) + 20}):")
    assert "invalid continuation byte" in message and "--encoding" in message
    assert _nothing_written(database)


def test_unknown_encoding_is_a_clear_error(tmp_path: Path):
    path = _write(tmp_path / "list.csv", "email\na@example.com\n")

    with pytest.raises(CsvImportError, match=r"unknown text encoding 'klingon'$") as failure:
        detect_layout(path, "klingon")
    assert str(failure.value).startswith(str(path))


def test_explicit_utf8_encoding_still_drops_the_bom(tmp_path: Path, database: Database):
    path = tmp_path / "bom.csv"
    path.write_bytes(codecs.BOM_UTF8 + b"Email\na@example.com\n")

    assert detect_layout(path, "UTF8").field_names == ["email"]
    assert import_recipients(database, path, "main", encoding="utf-8").imported == 1


# --- files that cannot be imported --------------------------------------------------------


def test_missing_file(tmp_path: Path, database: Database):
    path = tmp_path / "nowhere.csv"

    with pytest.raises(CsvImportError, match=r"^.*nowhere\.csv: no such file$"):
        import_recipients(database, path, "main")
    assert _nothing_written(database)


@pytest.mark.parametrize("content", [b"", codecs.BOM_UTF8, b"\n\n  \n"])
def test_empty_file(tmp_path: Path, database: Database, content: bytes):
    path = tmp_path / "empty.csv"
    path.write_bytes(content)

    with pytest.raises(CsvImportError) as failure:
        import_recipients(database, path, "main")
    assert str(failure.value) == f"{path}: the file is empty"
    assert _nothing_written(database)


def test_header_only_file_is_an_error_and_creates_no_list(tmp_path: Path, database: Database):
    path = _write(tmp_path / "header.csv", "Email,First Name\n")

    with pytest.raises(CsvImportError) as failure:
        import_recipients(database, path, "main")

    assert str(failure.value) == f"{path}: line 2: a header and no rows; nothing imported"
    assert _nothing_written(database)


def test_binary_file(tmp_path: Path, database: Database):
    path = tmp_path / "image.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00")

    with pytest.raises(CsvImportError) as failure:
        import_recipients(database, path, "main")
    message = str(failure.value)
    assert message.startswith(f"{path}: NUL bytes") and "binary" in message
    assert "\n" not in message
    assert _nothing_written(database)


def test_nul_byte_after_the_first_kilobytes_fails_naming_the_line(
    tmp_path: Path, database: Database
):
    rows = "".join(f"user{index}@example.com\n" for index in range(10_000))
    path = _write(tmp_path / "list.csv", "email\n" + rows + "bad\x00@example.com\n")

    with pytest.raises(CsvImportError, match=r": line 10002: NUL character"):
        import_recipients(database, path, "main")
    assert _nothing_written(database)


def test_missing_email_column(tmp_path: Path, database: Database):
    path = _write(tmp_path / "list.csv", "Name,Phone\nAnn,123\n")

    with pytest.raises(CsvImportError) as failure:
        import_recipients(database, path, "main")
    assert str(failure.value) == (
        f"{path}: line 1: no email column: expected a header such as Email, E-mail or "
        f"Email Address; found 'name', 'phone'"
    )
    assert _nothing_written(database)


def test_headers_that_collide_once_normalised(tmp_path: Path):
    path = _write(tmp_path / "list.csv", "Email,First Name,first-name\n")

    with pytest.raises(CsvImportError) as failure:
        detect_layout(path)
    assert str(failure.value) == (
        f"{path}: line 1: columns 'First Name' and 'first-name' both become the field name "
        f"'first_name'; rename one"
    )


def test_header_without_a_usable_name(tmp_path: Path):
    path = _write(tmp_path / "list.csv", "Email,,City\n")

    with pytest.raises(CsvImportError, match=r"line 1: column 2 \(''\) has no usable name"):
        detect_layout(path)


# --- headers and fields -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "name"),
    [
        (" First Name ", "first_name"),
        ("E-Mail Address", "e_mail_address"),
        ("Prénom", "prenom"),
        ("ZIP/Post Code", "zip_post_code"),
        ("1st Choice", "_1st_choice"),
        ("__Plan__", "plan"),
        ("Имя", ""),
        ("\ufeffEmail", "email"),
    ],
)
def test_normalise_field_name(header: str, name: str):
    assert normalise_field_name(header) == name
    assert name == "" or name.isidentifier()


@pytest.mark.parametrize(
    ("headers", "index"),
    [
        (["name", "email"], 1),
        (["e_mail", "name"], 0),
        (["email_address"], 0),
        (["e_mail_address"], 0),
        (["mail", "email"], 1),
    ],
)
def test_find_email_column(headers: list[str], index: int):
    assert find_email_column(headers) == index


def test_headers_are_normalised_and_the_address_column_becomes_email(
    tmp_path: Path, database: Database
):
    path = _write(
        tmp_path / "list.csv",
        " E-Mail Address ;First Name;Prénom;1st Choice\n"
        "  Ann@Example.COM  ;  Ann  ; Anne ;  tea \n",
    )

    report = import_recipients(database, path, "main")

    assert report.imported == 1
    assert _stored(database) == {
        "ann@example.com": (
            "Ann@example.com",
            {
                "email": "Ann@example.com",
                "first_name": "Ann",
                "prenom": "Anne",
                "_1st_choice": "tea",
            },
        )
    }
    assert _field_names(database) == ["email", "first_name", "prenom", "_1st_choice"]


# --- rows -------------------------------------------------------------------------------


def test_bad_rows_are_reported_with_their_lines(tmp_path: Path, database: Database):
    text = (
        "email,name,city\n"  # 1
        "good1@example.com,A,X\n"  # 2
        "not-an-address,B,Y\n"  # 3
        "\n"  # 4: blank, skipped without a count
        'good2@example.com,"two\nlines",Z\n'  # 5-6
        "too@many.com,C,Z,extra\n"  # 7
        ",D,W\n"  # 8
        "x@@example.com,E,V\n"  # 9
        "short@example.com,F\n"  # 10: padded
        "user@localhost,G,U\n"  # 11
    )
    path = _write(tmp_path / "list.csv", text)

    report = import_recipients(database, path, "main", chunk_rows=3)

    assert _counts(report) == dict(imported=3, updated=0, duplicates=0, rejected=5, suppressed=0)
    assert [error.line for error in report.errors] == [3, 7, 8, 9, 11]
    reasons = {error.line: error.reason for error in report.errors}
    assert (
        reasons[3]
        == "invalid email address 'not-an-address': An email address must have an @-sign."
    )
    assert reasons[7] == "4 fields where the header has 3"
    assert reasons[8] == "no email address"
    assert reasons[9].startswith("invalid email address 'x@@example.com': ")
    assert reasons[11] == (
        "invalid email address 'user@localhost': The part after the @-sign is not valid. "
        "It should have a period."
    )
    stored = _stored(database)
    assert stored["good2@example.com"][1]["name"] == "two\nlines"
    assert stored["short@example.com"][1] == {
        "email": "short@example.com",
        "name": "F",
        "city": "",
    }


@pytest.mark.parametrize("chunk_rows", [1, 1000])
def test_rows_wider_than_the_header_are_rejected_wherever_they_are(
    tmp_path: Path, database: Database, chunk_rows: int
):
    text = (
        "email,name\n"
        "first@example.com,A,extra\n"  # 2: the first data row, one field too many
        "ok@example.com,B\n"  # 3
        "wide@example.com,C,x,y\n"  # 4: two too many
        "trailing@example.com,D,\n"  # 5: one empty extra field is tolerated
        "last@example.com,E,x,y,z\n"  # 6: the last row
    )
    path = _write(tmp_path / "list.csv", text)

    report = import_recipients(database, path, "main", chunk_rows=chunk_rows)

    assert report.errors == [
        RejectedRow(2, "3 fields where the header has 2"),
        RejectedRow(4, "4 fields where the header has 2"),
        RejectedRow(6, "5 fields where the header has 2"),
    ]
    assert set(_stored(database)) == {"ok@example.com", "trailing@example.com"}


def test_windows_and_old_mac_line_endings(tmp_path: Path, database: Database):
    crlf = _write(tmp_path / "crlf.csv", 'email,note\r\na@example.com,"two\r\nlines"\r\nbad,x\r\n')
    cr = _write(tmp_path / "cr.csv", "email,note\rb@example.com,x\rbad,y\r")

    crlf_report = import_recipients(database, crlf, "crlf")
    cr_report = import_recipients(database, cr, "cr")

    assert (crlf_report.imported, [error.line for error in crlf_report.errors]) == (1, [4])
    assert _stored(database, "crlf")["a@example.com"][1]["note"] == "two\r\nlines"
    assert (cr_report.imported, [error.line for error in cr_report.errors]) == (1, [3])


def test_unclosed_quote_fails_naming_its_line(tmp_path: Path, database: Database):
    path = _write(
        tmp_path / "list.csv", 'email,name\na@example.com,A\nb@example.com,"B\nc@example.com,C\n'
    )

    with pytest.raises(CsvImportError) as failure:
        import_recipients(database, path, "main")
    assert str(failure.value) == (
        f"{path}: line 3: a quoted value is never closed (a '\"' without its pair)"
    )
    assert _nothing_written(database)


def test_report_as_dict_is_json_ready(tmp_path: Path, database: Database):
    path = _write(tmp_path / "list.csv", "email\na@example.com\nnope\n")

    report = import_recipients(database, path, "main")

    assert json.loads(json.dumps(report.as_dict())) == {
        "list": "main",
        "path": str(path),
        "imported": 1,
        "updated": 0,
        "duplicates": 0,
        "rejected": 1,
        "suppressed": 0,
        "errors": [{"line": 3, "reason": report.errors[0].reason}],
    }
    assert report.errors == [RejectedRow(3, report.errors[0].reason)]


@pytest.mark.parametrize("chunk_rows", [1, 2, 1000])
def test_duplicates_in_a_file_merge_into_the_first_occurrence(
    tmp_path: Path, database: Database, chunk_rows: int
):
    text = (
        "email,first_name,city,plan\n"
        "Ann@example.com,Ann,,Free\n"
        "bob@example.com,Bob,Oslo,Pro\n"
        "ANN@EXAMPLE.COM,,Lyon,\n"
        "ann@Example.com,Annie,,Team\n"
    )
    path = _write(tmp_path / "list.csv", text)

    report = import_recipients(database, path, "main", chunk_rows=chunk_rows)

    assert _counts(report) == dict(imported=2, updated=0, duplicates=2, rejected=0, suppressed=0)
    assert _stored(database)["ann@example.com"] == (
        "Ann@example.com",
        {"email": "Ann@example.com", "first_name": "Annie", "city": "Lyon", "plan": "Team"},
    )


@pytest.mark.parametrize("chunk_rows", [1, 1000])
def test_reimport_updates_instead_of_duplicating(
    tmp_path: Path, database: Database, chunk_rows: int
):
    first = _write(tmp_path / "first.csv", "email,name,city\nann@example.com,Ann,Oslo\n")
    second = _write(
        tmp_path / "second.csv",
        "Email,City,Company\nANN@example.com,,Acme\nann@example.com,Bergen,\nnew@example.com,,\n",
    )
    import_recipients(database, first, "main")

    report = import_recipients(database, second, "main", chunk_rows=chunk_rows)

    assert _counts(report) == dict(imported=1, updated=1, duplicates=1, rejected=0, suppressed=0)
    stored = _stored(database)
    assert len(stored) == 2
    # New non-empty values win, empty ones keep what was stored; the file's spelling is kept.
    assert stored["ann@example.com"] == (
        "ANN@example.com",
        {"email": "ANN@example.com", "name": "Ann", "city": "Bergen", "company": "Acme"},
    )
    assert stored["new@example.com"][1] == {"email": "new@example.com", "city": "", "company": ""}
    assert _field_names(database) == ["email", "name", "city", "company"]

    again = import_recipients(database, second, "main")
    assert _counts(again) == dict(imported=0, updated=2, duplicates=1, rejected=0, suppressed=0)
    assert len(_stored(database)) == 2


def test_chunk_rows_must_be_positive(tmp_path: Path, database: Database):
    path = _write(tmp_path / "list.csv", "email\na@example.com\n")

    with pytest.raises(InputError, match="chunk_rows must be at least 1, got 0"):
        import_recipients(database, path, "main", chunk_rows=0)


def test_lists_are_separate(tmp_path: Path, database: Database):
    path = _write(tmp_path / "list.csv", "email\na@example.com\n")

    assert import_recipients(database, path, "one").imported == 1
    assert import_recipients(database, path, "two").imported == 1
    assert set(_stored(database, "one")) == set(_stored(database, "two")) == {"a@example.com"}


@pytest.mark.parametrize("chunk_rows", [1, 1000])
def test_suppressed_addresses_are_kept_out(tmp_path: Path, database: Database, chunk_rows: int):
    with database.session() as session:
        session.add(Suppression(email_key="gone@example.com", reason="unsubscribed", detail=None))
        session.add(Suppression(email_key="bounced@example.com", reason="bounced", detail=None))
    path = _write(
        tmp_path / "list.csv",
        "email,name\nGone@Example.com,G\nstay@example.com,S\nbounced@example.com,B\n"
        "GONE@example.com,G2\n",
    )

    report = import_recipients(database, path, "main", chunk_rows=chunk_rows)

    assert _counts(report) == dict(imported=1, updated=0, duplicates=1, rejected=0, suppressed=2)
    assert set(_stored(database)) == {"stay@example.com"}


def test_suppressed_address_already_in_the_list_is_left_as_it_was(
    tmp_path: Path, database: Database
):
    import_recipients(
        database, _write(tmp_path / "a.csv", "email,name\nx@example.com,Old\n"), "main"
    )
    with database.session() as session:
        session.add(Suppression(email_key="x@example.com", reason="complained", detail=None))

    second = _write(tmp_path / "b.csv", "email,name\nx@example.com,New\nX@example.com,Newer\n")
    report = import_recipients(database, second, "main", chunk_rows=1)

    assert _counts(report) == dict(imported=0, updated=0, duplicates=1, rejected=0, suppressed=1)
    assert _stored(database)["x@example.com"][1]["name"] == "Old"


@pytest.mark.parametrize("extra_columns", [0, 5])
def test_generated_list_gives_exactly_the_expected_counts(
    tmp_path: Path, database: Database, extra_columns: int
):
    facts = write_sample_list(tmp_path / "sample.csv", 10_000, extra_columns=extra_columns)

    report = import_recipients(database, facts.path, "main", chunk_rows=1_500)

    assert _counts(report) == dict(
        imported=len(facts.valid_unique_emails),
        updated=0,
        duplicates=len(facts.duplicate_lines),
        rejected=len(facts.invalid_lines),
        suppressed=0,
    )
    assert [error.line for error in report.errors] == facts.invalid_lines
    stored = _stored(database)
    assert sorted(stored) == sorted(facts.valid_unique_emails)
    assert all(fields["email"] == email for email, fields in stored.values())


# --- the fast path for plain addresses ----------------------------------------------------


def _validator_result(address: str) -> str:
    try:
        return validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError as error:
        return f"error: {' '.join(str(error).split())}"


def _our_result(address: str) -> str:
    try:
        return normalise_email(address)
    except InputError as error:
        return f"error: {error}"


EDGE_ADDRESSES = [
    "user@example.com",
    "User.Name+tag@Example.COM",
    "a!#$%&'*+/=?^_`{|}~-@example.org",
    "Postmaster@example.com",
    "INFO@example.com",
    "x@EXAMPLE.test",
    "x@example.localhost",
    "x@sub.example.invalid",
    "x@example",
    "x@example.123",
    "x@123.example.com",
    "x@xn--bcher-kva.example",
    "x@XN--BCHER-KVA.example",
    "x@xn--invalid-.com",
    "x@ab--cd.example.com",
    "x@-example.com",
    "x@example-.com",
    "x@example..com",
    "x@.example.com",
    "x@example.com.",
    ".x@example.com",
    "x.@example.com",
    "x..y@example.com",
    "x@" + "a" * 63 + ".com",
    "x@" + "a" * 64 + ".com",
    "a" * 64 + "@example.com",
    "a" * 65 + "@example.com",
    "a" * 240 + "@example.com",
    "a" * 242 + "@example.com",
    "x@" + ".".join(["a" * 60] * 4) + ".com",
    "x@" + ".".join(["a" * 61] * 4) + ".co",
    '"quoted"@example.com',
    "Name <x@example.com>",
    "x@[127.0.0.1]",
    "x @example.com",
    "x@exa mple.com",
    "x@@example.com",
    "x@example_domain.com",
    "zoë@example.com",
    "x@bücher.example",
    "",
    "@example.com",
    "x@",
]


@pytest.mark.parametrize("address", EDGE_ADDRESSES)
def test_normalise_email_equals_email_validator_on_edge_cases(address: str):
    assert _our_result(address) == _validator_result(address)


def test_normalise_email_equals_email_validator_on_random_ascii_addresses():
    random_source = random.Random(11)
    atom_characters = "aZ09-_+'!#=~"
    stray_characters = '."@ ()<>[],;:\\'
    domain_characters = "aZ09.-" + "_@ ["
    labels = ["example", "com", "org", "xn--bcher-kva", "test", "localhost", "a" * 63, "ex--ample"]
    fast = 0
    for _ in range(20_000):
        atoms = [
            "".join(random_source.choices(atom_characters, k=random_source.randint(1, 5)))
            for _ in range(random_source.randint(1, 3))
        ]
        local = ".".join(atoms)
        if random_source.random() < 0.3:
            position = random_source.randint(0, len(local))
            local = local[:position] + random_source.choice(stray_characters) + local[position:]
        draw = random_source.random()
        if draw < 0.4:
            domain = random_source.choice(["example.com", "Mail.Example.ORG", "a-b.example.co.uk"])
        elif draw < 0.7:
            domain = ".".join(random_source.choices(labels, k=random_source.randint(1, 4)))
        else:
            domain = "".join(
                random_source.choices(domain_characters, k=random_source.randint(0, 16))
            )
        address = f"{local}@{domain}"
        if random_source.random() < 0.3:
            address = address.upper()
        fast += fields_module._normalise_plain(address) is not None
        assert _our_result(address) == _validator_result(address), address
    # The comparison means little unless many addresses took the fast path.
    assert fast > 5_000


def test_fast_path_is_taken_for_plain_addresses():
    assert fields_module._normalise_plain("Jo.Smith+x@Example.COM") == "Jo.Smith+x@example.com"
    assert fields_module._normalise_plain("postmaster@example.com") is None
    assert fields_module._normalise_plain("x@example.test") is None
