"""Reading a recipient CSV robustly: encoding, delimiter, headers, then rows in chunks.

Rows are streamed with pandas' C parser in chunks, so memory stays flat for million-row files.
The file is decoded here rather than by pandas, strictly, so a decoding error anywhere in the
file names its line and byte.

Line numbers are physical lines: the header is line 1, the first data row line 2, and a quoted
value spanning several lines moves the rows after it down accordingly.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import re
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

import pandas as pd

from campaigns.core.errors import CsvImportError
from campaigns.lists.fields import normalise_field_name

DELIMITERS = (",", ";", "\t", "|")
SNIFF_BYTES = 64 * 1024
"""How much of the file the delimiter is guessed from."""
MAX_HEADER_BYTES = 1024 * 1024
READ_BLOCK_BYTES = 256 * 1024

_BOMS = (
    # UTF-32 first: its little-endian BOM starts with UTF-16's.
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_ENCODING_HINT = "if the file is not UTF-8, pass --encoding (for example --encoding cp1252)"
_BAD_LINE = re.compile(r"Skipping line (\d+): expected (\d+) fields, saw (\d+)")
_OPEN_QUOTE = re.compile(r"EOF inside string starting at row (\d+)")
_OVERFLOW = "overflow"
# warnings.catch_warnings swaps process-wide state: two imports in threads must take turns.
_PARSER_LOCK = threading.Lock()

T = TypeVar("T")


@dataclass(frozen=True)
class CsvLayout:
    encoding: str
    """Python codec that decodes the file after its byte order mark (if any)."""
    delimiter: str
    headers: list[str]
    """Header cells as written, without surrounding white space."""
    field_names: list[str]
    """``headers`` through ``normalise_field_name``, in the same order."""


@dataclass(frozen=True)
class CsvChunk:
    """Consecutive records of the file, in file order.

    ``rows[i]`` holds one value per header, unstripped, and starts on line ``lines[i]``. Rows
    with fewer values than headers are padded with ``""`` (pandas cannot tell ``a,b`` from
    ``a,b,`` in a three-column file); rows where every value is empty are left out. Rows with
    more values than headers are not in ``rows`` but in ``malformed`` as (line, reason), except
    that one empty value too many (a trailing delimiter) is dropped silently.
    """

    lines: list[int]
    rows: list[tuple[str, ...]]
    malformed: list[tuple[int, str]]


def detect_layout(path: Path, encoding: str | None = None) -> CsvLayout:
    """Encoding (byte order mark, else UTF-8, unless ``encoding`` is given), delimiter, headers.

    Raises CsvImportError, one line naming the file, for a missing, empty, binary or
    undecodable file, and for headers that are empty or collide once normalised.
    """
    head = _read_head(path)
    codec, bom_length = _choose_encoding(path, head, encoding)
    if not head[bom_length:]:
        raise CsvImportError(f"{path}: the file is empty")
    with path.open("rb") as raw:
        raw.seek(bom_length)
        text = _DecodingReader(path, raw, codec, bom_length).read(len(head))
    if not text.strip():
        raise CsvImportError(f"{path}: the file is empty")
    complete = len(head) < SNIFF_BYTES
    sample = text if complete else text[: text.rfind("\n") + 1] or text
    delimiter = _sniff_delimiter(sample, complete)
    try:
        header_row = next(csv.reader(_lines(sample), delimiter=delimiter), [])
    except csv.Error as error:
        raise CsvImportError(f"{path}: line 1: cannot parse the header: {error}") from None
    headers = [cell.strip() for cell in header_row]
    return CsvLayout(codec, delimiter, headers, _field_names(path, headers))


def read_chunks(path: Path, layout: CsvLayout, chunk_rows: int) -> Iterator[CsvChunk]:
    """The data records of ``path`` in chunks of at most ``chunk_rows`` records.

    Raises CsvImportError (naming the line) when the file cannot be decoded or parsed, at the
    point of the file where that happens: a caller that must be all-or-nothing should not
    commit anything before the iteration ends.
    """
    # The header is read as a record like the others (header=None), so that pandas takes the
    # table's width from ``names`` rather than from a first data row that may be wider. One
    # column more than the header catches one extra value; rows wider still are skipped by
    # pandas with a warning naming their record.
    names = [*(f"c{index}" for index in range(len(layout.headers))), _OVERFLOW]
    with path.open("rb") as raw:
        bom_length = _bom_length(raw.read(4), layout.encoding)
        raw.seek(bom_length)
        source = _DecodingReader(path, raw, layout.encoding, bom_length)
        parser = _parse(
            path,
            source,
            # pandas-stubs want a whole file (seek, tell, fileno, readline); the C engine
            # only reads, which is all this streaming decoder offers.
            lambda: pd.read_csv(  # type: ignore[call-overload]
                source,
                sep=layout.delimiter,
                engine="c",
                header=None,
                names=names,
                index_col=False,
                dtype=str,
                keep_default_na=False,
                na_filter=False,
                skip_blank_lines=False,
                on_bad_lines="warn",
                chunksize=chunk_rows,
            ),
        )
        numbering = _LineNumbering(len(layout.headers))
        with parser:
            while True:
                frame = _parse(path, source, lambda: next(parser, None), numbering)
                if frame is None:
                    if numbering.bad_records:
                        yield CsvChunk([], [], numbering.trailing())
                    return
                yield numbering.chunk(frame)


class _DecodingReader:
    """A text file-like view of the raw file for pandas that decodes strictly.

    It knows the byte offset and line it has reached, so a decoding error or a NUL byte
    anywhere in the file becomes a one-line error naming both.
    """

    def __init__(self, path: Path, raw: BinaryIO, codec: str, start_offset: int) -> None:
        self.path = path
        self.failure: CsvImportError | None = None
        self._raw = raw
        self._codec = codec
        self._decoder = codecs.getincrementaldecoder(codec)(errors="strict")
        self._byte_offset = start_offset
        self._line = 1

    def read(self, size: int = -1) -> str:
        block = self._raw.read(size if size and size > 0 else READ_BLOCK_BYTES)
        try:
            text = self._decoder.decode(block, final=not block)
        except UnicodeDecodeError as error:
            self.failure = self._decoding_failure(block, error)
            raise self.failure from None
        if "\x00" in text:
            line = self._line + text[: text.index("\x00")].count("\n")
            self.failure = CsvImportError(
                f"{self.path}: line {line}: NUL character: this looks like a binary file, "
                f"not CSV text (a UTF-16 file without byte order mark needs --encoding utf-16-le)"
            )
            raise self.failure
        self._line += text.count("\n")
        self._byte_offset += len(block)
        return text

    def __iter__(self) -> Iterator[str]:
        # pandas only accepts objects that look iterable; it never iterates this one.
        return iter(())

    def _decoding_failure(self, block: bytes, error: UnicodeDecodeError) -> CsvImportError:
        # Buffered decoders report positions within their leftover bytes plus the new block.
        offset = self._byte_offset - (len(error.object) - len(block)) + error.start
        before = error.object[: error.start].decode(self._codec, errors="replace")
        line = self._line + before.count("\n")
        bad = error.object[error.start : error.end].hex(" ")
        return CsvImportError(
            f"{self.path}: line {line} (byte offset {offset}): cannot decode as {self._codec} "
            f"({error.reason}: {bad}); {_ENCODING_HINT}"
        )


class _LineNumbering:
    """Turns pandas' record numbers into physical line numbers.

    pandas counts records (a quoted value with line breaks is one record) and reports skipped
    bad records by that count, as warnings; the line breaks inside values are counted here.
    """

    def __init__(self, header_width: int) -> None:
        self.header_width = header_width
        self.bad_records: list[tuple[int, str]] = []
        self._record = 1
        self._extra_lines = 0

    def chunk(self, frame: pd.DataFrame) -> CsvChunk:
        overflow = frame.pop(_OVERFLOW)
        overflowing = overflow.tolist() if (overflow != "").any() else None
        columns = [frame[name].tolist() for name in frame.columns]
        line_breaks = _line_breaks_per_row(frame)
        pending_bad = sorted(self.bad_records)
        self.bad_records = []
        lines: list[int] = []
        rows: list[tuple[str, ...]] = []
        malformed: list[tuple[int, str]] = []
        for index, row in enumerate(zip(*columns, strict=True)):
            while pending_bad and pending_bad[0][0] <= self._record:
                malformed.append(self._skip(*pending_bad.pop(0)))
            record, line = self._record, self._record + self._extra_lines
            self._record += 1
            if line_breaks is not None:
                self._extra_lines += line_breaks[index]
            if record == 1:
                continue  # the header, already read by detect_layout
            if overflowing is not None and overflowing[index]:
                width = self.header_width
                malformed.append((line, f"{width + 1} fields where the header has {width}"))
            elif any(row):
                lines.append(line)
                rows.append(row)
        malformed.extend(self._skip(*bad) for bad in pending_bad)
        return CsvChunk(lines, rows, malformed)

    def trailing(self) -> list[tuple[int, str]]:
        malformed = [self._skip(*bad) for bad in sorted(self.bad_records)]
        self.bad_records = []
        return malformed

    def note_warning(self, path: Path, message: str) -> None:
        for text in message.strip().splitlines():
            match = _BAD_LINE.fullmatch(text.strip())
            if match is None:
                raise CsvImportError(self._unusable(path, text.strip()))
            record, _, found = (int(group) for group in match.groups())
            reason = f"{found} fields where the header has {self.header_width}"
            self.bad_records.append((record, reason))

    def _skip(self, record: int, reason: str) -> tuple[int, str]:
        self._record = max(self._record, record + 1)
        return record + self._extra_lines, reason

    def _unusable(self, path: Path, message: str) -> str:
        # Anything else pandas warns about may mean dropped values: stop rather than guess.
        line = self._record + self._extra_lines
        return f"{path}: near line {line}: cannot parse as CSV: {message}"


def _line_breaks_per_row(frame: pd.DataFrame) -> list[int] | None:
    counts = None
    for name in frame.columns:
        column = frame[name]
        if column.str.contains("\n", regex=False).any():
            column_counts = column.str.count("\n")
            counts = column_counts if counts is None else counts + column_counts
    return None if counts is None else counts.tolist()


def _parse(
    path: Path,
    source: _DecodingReader,
    step: Callable[[], T],
    numbering: _LineNumbering | None = None,
) -> T:
    """``step()``, with pandas' errors and bad-line warnings turned into this module's terms."""
    with _PARSER_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", pd.errors.ParserWarning)
        try:
            result = step()
        except CsvImportError:
            raise
        except (pd.errors.ParserError, ValueError, UnicodeError) as error:
            if source.failure is not None:
                raise source.failure from None
            raise CsvImportError(_parser_error(path, str(error))) from None
    for warning in caught:
        if not issubclass(warning.category, pd.errors.ParserWarning):
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
        elif numbering is None:
            raise CsvImportError(_parser_error(path, str(warning.message)))
        else:
            numbering.note_warning(path, str(warning.message))
    return result


def _parser_error(path: Path, message: str) -> str:
    open_quote = _OPEN_QUOTE.search(message)
    if open_quote:
        # pandas counts rows from 0, the header being row 0.
        line = int(open_quote.group(1)) + 1
        return f"{path}: line {line}: a quoted value is never closed (a '\"' without its pair)"
    return f"{path}: cannot parse as CSV: {' '.join(message.split())}"


def _read_head(path: Path) -> bytes:
    """The first SNIFF_BYTES of the file, extended to the end of the header line."""
    try:
        with path.open("rb") as raw:
            head = raw.read(SNIFF_BYTES)
            while b"\n" not in head and len(head) < MAX_HEADER_BYTES:
                more = raw.read(SNIFF_BYTES)
                if not more:
                    break
                head += more
    except FileNotFoundError:
        raise CsvImportError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CsvImportError(f"{path}: is a directory, not a CSV file") from None
    except OSError as error:
        raise CsvImportError(f"{path}: cannot read: {error.strerror}") from None
    return head


def _choose_encoding(path: Path, head: bytes, requested: str | None) -> tuple[str, int]:
    """The codec to decode with and the length of the byte order mark to skip first."""
    if requested is None:
        for bom, codec in _BOMS:
            if head.startswith(bom):
                return codec, len(bom)
        if b"\x00" in head:
            raise CsvImportError(
                f"{path}: NUL bytes in the first line(s): this looks like a binary file, "
                f"not CSV text (a UTF-16 file without byte order mark needs --encoding utf-16-le)"
            )
        return "utf-8", 0
    try:
        codec = codecs.lookup(requested).name
        b"".decode(codec)
    except LookupError:
        raise CsvImportError(f"{path}: unknown text encoding {requested!r}") from None
    # "utf-16" and "utf-32" read the byte order from the BOM; name the order so that byte
    # offsets in errors stay exact.
    generic = {
        "utf-8-sig": ("utf-8",),
        "utf-16": ("utf-16-le", "utf-16-be"),
        "utf-32": ("utf-32-le", "utf-32-be"),
    }
    for bom, bom_codec in _BOMS:
        if head.startswith(bom) and (codec == bom_codec or bom_codec in generic.get(codec, ())):
            return bom_codec, len(bom)
    return codec, 0


def _bom_length(first_bytes: bytes, codec: str) -> int:
    for bom, bom_codec in _BOMS:
        if codec == bom_codec and first_bytes.startswith(bom):
            return len(bom)
    return 0


def _sniff_delimiter(sample: str, complete: bool) -> str:
    """The candidate splitting the sample's records into the most, equally many, fields."""
    best, best_score = ",", (False, 1)
    for delimiter in DELIMITERS:
        widths = _record_widths(sample, delimiter)
        if not complete:
            # The sample may end inside a quoted value: its last record may be cut short.
            widths = widths[:-1] or widths
        if not widths or widths[0] < 2:
            continue
        consistent = all(width == widths[0] for width in widths)
        score = (consistent, widths[0])
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _record_widths(sample: str, delimiter: str) -> list[int]:
    widths: list[int] = []
    reader = csv.reader(_lines(sample), delimiter=delimiter)
    # The sample may end inside a quoted value; the records before it still count.
    with contextlib.suppress(csv.Error):
        widths.extend(len(row) for row in reader if row)
    return widths


def _field_names(path: Path, headers: list[str]) -> list[str]:
    names = [normalise_field_name(header) for header in headers]
    for position, (header, name) in enumerate(zip(headers, names, strict=True), start=1):
        if not name:
            raise CsvImportError(
                f"{path}: line 1: column {position} ({header!r}) has no usable name; "
                f"a merge field name needs Latin letters or digits"
            )
    first_header: dict[str, str] = {}
    for header, name in zip(headers, names, strict=True):
        if name in first_header:
            raise CsvImportError(
                f"{path}: line 1: columns {first_header[name]!r} and {header!r} "
                f"both become the field name {name!r}; rename one"
            )
        first_header[name] = header
    return names


def _lines(text: str) -> io.StringIO:
    # Universal newlines: files from old Macs end their lines with a bare "\r".
    return io.StringIO(text, newline=None)
