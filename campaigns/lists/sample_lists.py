"""Synthetic recipient lists for the demo, the tests and the benchmark.

Each list comes with the facts an import of it must reproduce: which addresses are valid and
unique, and on which lines the invalid and the repeated addresses are. Addresses are unique by
construction (``user0000123@example.com``), so a million rows cost no bookkeeping.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path

DEMO_LIST = Path(__file__).resolve().parent / "demo_data" / "recipients.csv"
DEMO_ROWS = 300
DEMO_SEED = 2024
DEMO_EXTRA_COLUMNS = 1
"""The shipped demo list is ``write_demo_list()``'s output; a test keeps the two in step."""

COLUMNS = ("Email", "First Name", "Last Name", "City", "Plan")
EXTRA_COLUMNS = ("Company", "Phone", "Signup Date", "Referrer", "Notes")
DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com", "example.co.uk")
PLANS = ("Free", "Pro", "Team", "Business")

# (first names, last names, cities) per script. No quotes or ampersands: tests compare rendered
# HTML with html.escape(), which spells an apostrophe differently from Jinja's autoescape.
_PEOPLE = (
    (
        ("José", "Zoë", "Françoise", "Łukasz", "Søren", "Ångström", "Mónica", "Jürgen", "Ðorđe"),
        ("García", "Müller", "Dvořák", "Nowak", "Øberg", "Côté", "Smith, Jr.", "Ibáñez"),
        ("São Paulo", "Zürich", "Kraków", "Montréal", "Reykjavík", "Málaga", "Lyon"),
    ),
    (
        ("Иван", "Дмитрий", "Сергей", "Алексей"),
        ("Смирнов", "Иванов", "Кузнецов", "Попов"),
        ("Москва", "Новосибирск", "Казань", "Київ"),
    ),
    (
        ("Νίκος", "Ελένη", "Γιώργος", "Μαρία"),
        ("Παπαδόπουλος", "Οικονόμου", "Γεωργίου"),
        ("Αθήνα", "Θεσσαλονίκη", "Πάτρα"),
    ),
    (("太郎", "花子", "陽翔", "結衣"), ("佐藤", "鈴木", "高橋"), ("東京", "大阪", "京都")),
    (("伟", "秀英", "静", "磊"), ("王", "李", "张", "刘"), ("北京", "上海", "深圳")),
    (("민준", "서연", "지호"), ("김", "이", "박"), ("서울", "부산")),
    (
        ("محمد", "فاطمة", "أحمد", "ليلى"),
        ("الحسن", "العلي", "منصور"),
        ("القاهرة", "دبي", "الرياض", "عمّان"),
    ),
    (
        ("अर्जुन", "प्रिया", "राहुल", "अनन्या"),
        ("शर्मा", "पटेल", "गुप्ता", "सिंह"),
        ("मुंबई", "दिल्ली", "पुणे", "जयपुर"),
    ),
)
_COMPANIES = ("Northwind", "Acme GmbH", "Globex", "Initech", "Umbrella, Inc.", "Müller & Söhne")
_REFERRERS = ("newsletter", "webinar", "partner", "search", "")

# Each makes an address email-validator rejects whatever the local part: no @-sign, two
# @-signs, a space inside, a domain without a period, an empty label, a bad character.
_BREAKERS = (
    lambda local, domain: f"{local}.{domain}",
    lambda local, domain: f"{local}@@{domain}",
    lambda local, domain: f"{local[:4]} {local[4:]}@{domain}",
    lambda local, domain: f"{local}@{domain.split('.')[0]}",
    lambda local, domain: f"{local}@{domain.replace('.', '..', 1)}",
    lambda local, domain: f"{local}@{domain.replace('.', '_', 1)}",
    lambda local, domain: f"{local}@-{domain}",
)


@dataclass(frozen=True)
class SampleListFacts:
    path: Path
    rows: int
    """Data rows, not counting the header."""
    valid_unique_emails: list[str]
    """Lower-cased keys of the valid addresses, in the order they first appear."""
    invalid_lines: list[int]
    duplicate_lines: list[int]
    """Lines repeating an earlier valid address in a different case."""


def write_sample_list(
    path: Path,
    rows: int,
    *,
    invalid_ratio: float = 0.03,
    duplicate_ratio: float = 0.02,
    seed: int = 7,
    extra_columns: int = 0,
) -> SampleListFacts:
    """Write a UTF-8 CSV of ``rows`` recipients to ``path``; the same arguments give the same bytes.

    Each row is invalid with probability ``invalid_ratio``, else a repeat of an earlier valid
    address with probability ``duplicate_ratio``, else a new valid address. Lines are physical
    lines, the header being line 1; from five extra columns on, a few "Notes" values span two.
    """
    if rows < 0 or extra_columns < 0:
        raise ValueError("rows and extra_columns cannot be negative")
    if not (0 <= invalid_ratio <= 1 and 0 <= duplicate_ratio <= 1):
        raise ValueError("ratios must be between 0 and 1")
    random_source = random.Random(seed)
    path = Path(path)
    valid: list[str] = []
    invalid_lines: list[int] = []
    duplicate_lines: list[int] = []
    with path.open("w", encoding="utf-8", newline="") as csv_file:
        writer = csv.writer(csv_file, lineterminator="\n")
        writer.writerow([*COLUMNS, *_extra_column_names(extra_columns)])
        line = 2
        for index in range(rows):
            local = f"user{index:07d}"
            domain = DOMAINS[index % len(DOMAINS)]
            draw = random_source.random()
            if draw < invalid_ratio:
                address = random_source.choice(_BREAKERS)(local, domain)
                invalid_lines.append(line)
            elif valid and draw < invalid_ratio + duplicate_ratio:
                address = _recased(random_source.choice(valid), random_source)
                duplicate_lines.append(line)
            else:
                address = f"{local}@{domain}"
                valid.append(address)
            extras = _extras(extra_columns, index, random_source)
            writer.writerow([address, *_person(random_source), *extras])
            # A value with a line break moves every later row down a line.
            line += 1 + sum(value.count("\n") for value in extras)
    return SampleListFacts(path, rows, valid, invalid_lines, duplicate_lines)


def write_demo_list(path: Path = DEMO_LIST) -> SampleListFacts:
    """Write the shipped demo list; run this after changing the generator, then commit."""
    return write_sample_list(path, DEMO_ROWS, seed=DEMO_SEED, extra_columns=DEMO_EXTRA_COLUMNS)


def _extra_column_names(count: int) -> list[str]:
    named = list(EXTRA_COLUMNS[:count])
    return named + [f"Extra {number}" for number in range(len(named) + 1, count + 1)]


def _person(random_source: random.Random) -> list[str]:
    first_names, last_names, cities = random_source.choice(_PEOPLE)
    return [
        random_source.choice(first_names),
        random_source.choice(last_names),
        random_source.choice(cities),
        random_source.choice(PLANS),
    ]


def _extras(count: int, index: int, random_source: random.Random) -> list[str]:
    makers = (
        lambda: random_source.choice(_COMPANIES),
        lambda: f"+1 555 {index % 10_000:04d}",
        lambda: f"2024-{index % 12 + 1:02d}-{index % 28 + 1:02d}",
        lambda: random_source.choice(_REFERRERS),
        lambda: "likes the\nweekly digest" if index % 97 == 0 else "",
    )
    return [makers[n]() if n < len(makers) else f"x{index}-{n}" for n in range(count)]


def _recased(address: str, random_source: random.Random) -> str:
    """The same address in a different case: email-validator gives it the same key."""
    local, domain = address.split("@")
    if random_source.random() < 0.5:
        return f"{local.upper()}@{domain}"
    return f"{local.capitalize()}@{domain.upper()}"
