"""How to read a user's CSV file: its delimiter and text encoding, sniffed unless forced.

Encoding: a byte-order mark decides (UTF-8, UTF-16 little or big endian); else UTF-8 when the whole
file decodes as UTF-8; else cp1252 (Windows' latin-1), or latin-1 itself when cp1252 has no character
for one of the bytes. Delimiter: a `.tsv` file is tab-separated; else csv.Sniffer picks one of
`, ; TAB |` from the file's first lines, and ',' when it cannot tell. data.sep and data.encoding force
either (training: the run's config; `ladder predict` honours the same settings of the trained run).
In a file not separated by commas, a text column whose every value is a number with a decimal comma
('1,5') is read as numbers.
"""

from __future__ import annotations

import codecs
import csv
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from modelladder.errors import InputError

DELIMITERS = ",;\t|"
HEAD_BYTES = 64 * 1024  # the head of the file the delimiter is sniffed from
HEAD_LINES = 200
CHUNK = 1 << 20
DECIMAL_COMMA = r"[+-]?(\d+(,\d*)?|,\d+)"
BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))

_announced: set[tuple] = set()  # (path, sep, encoding) already printed in this process


@dataclass(frozen=True)
class CsvFormat:
    """A CSV file's delimiter and encoding, and which of them were sniffed rather than set."""

    sep: str
    encoding: str
    sep_sniffed: bool = False
    encoding_sniffed: bool = False
    decimal_comma: tuple[str, ...] = ()  # columns read as numbers with a decimal comma

    def record(self) -> dict:
        """What preprocess.json keeps of the decision."""
        return {"sep": self.sep, "encoding": self.encoding,
                "sniffed": [k for k, s in (("sep", self.sep_sniffed), ("encoding", self.encoding_sniffed)) if s],
                "decimal_comma": list(self.decimal_comma)}

    def describe(self) -> str:
        sep = "tab" if self.sep == "\t" else repr(self.sep)
        commas = f", decimal commas in {list(self.decimal_comma)}" if self.decimal_comma else ""
        return f"{sep}-separated, {self.encoding}{commas}"


def sniff_format(path: Path, *, sep: str | None = None, encoding: str | None = None) -> CsvFormat:
    """The delimiter and encoding of CSV file `path`; `sep` / `encoding` when given are kept as they are."""
    encoding_sniffed = encoding is None
    if encoding is None:
        encoding = sniff_encoding(path)
    sep_sniffed = sep is None
    if sep is None:
        sep = "\t" if path.suffix.lower() == ".tsv" else sniff_sep(_head_text(path, encoding))
    return CsvFormat(sep, encoding, sep_sniffed, encoding_sniffed)


def sniff_encoding(path: Path) -> str:
    """'utf-8-sig' / 'utf-16' after a byte-order mark, else 'utf-8' if the file decodes, else 'cp1252' or 'latin-1'."""
    with path.open("rb") as f:
        head = f.read(4)
    for bom, name in BOMS:
        if head.startswith(bom):
            return name
    for name in ("utf-8", "cp1252"):
        if _decodes(path, name):
            return name
    return "latin-1"  # every byte is a latin-1 character


def _decodes(path: Path, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        with path.open("rb") as f:
            while chunk := f.read(CHUNK):
                decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _head_text(path: Path, encoding: str) -> str:
    """The first whole lines of the file (at most HEAD_BYTES bytes, HEAD_LINES lines), decoded leniently."""
    with path.open("rb") as f:
        head = f.read(HEAD_BYTES)
    text = codecs.getincrementaldecoder(encoding)(errors="replace").decode(head)  # not final: a cut character waits
    lines = text.splitlines(keepends=True)
    if len(head) == HEAD_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut
    return "".join(lines[:HEAD_LINES])


def sniff_sep(sample: str) -> str:
    """The delimiter csv.Sniffer finds among DELIMITERS in `sample`, when the header line holds it; else ','."""
    try:
        sep = csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        return ","
    header = sample.split("\n", 1)[0]
    return sep if sep in DELIMITERS and sep in header else ","


def read_csv(path: Path, *, sep: str | None = None, encoding: str | None = None, name: str = "data.path",
             **kwargs) -> tuple[pd.DataFrame, CsvFormat]:
    """The table in CSV file `path` and how it was read. `name` is how messages call the file (data.path, or
    'input file' for predict). Prints the decision once per file when something other than ',' and UTF-8
    was sniffed. pandas' EmptyDataError and ParserError are left to the caller; a file that does not decode
    in the (forced) encoding is an InputError."""
    fmt = sniff_format(path, sep=sep, encoding=encoding)
    try:
        frame = pd.read_csv(path, sep=fmt.sep, encoding=fmt.encoding, **kwargs)
    except UnicodeError as err:
        how = "data.encoding" if not fmt.encoding_sniffed else "the sniffed encoding"
        start = f" at byte {err.start}" if isinstance(err, UnicodeDecodeError) else ""
        reason = getattr(err, "reason", err)
        raise InputError(f"{name} {path} cannot be decoded as {how} '{fmt.encoding}'{start} ({reason}); "
                         "set data.encoding to the file's encoding (e.g. utf-8, utf-16, cp1252, latin-1)") from None
    if fmt.sep != ",":
        fmt = replace(fmt, decimal_comma=decimal_commas(frame))
    _announce(path, fmt, name)
    return frame, fmt


def decimal_commas(frame: pd.DataFrame) -> tuple[str, ...]:
    """Turn text columns holding decimal-comma numbers ('1,5', '-0,25', '3') into floats, in place; their names.

    Only for files not separated by commas, where a comma is the decimal mark of the spreadsheet that wrote it."""
    converted = []
    for column in frame.columns:
        values = frame[column]
        if not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)):
            continue
        present = values.dropna().astype(str).str.strip()
        if len(present) and present.str.fullmatch(DECIMAL_COMMA).all() and present.str.contains(",").any():
            frame[column] = pd.to_numeric(values.astype(str).str.strip().str.replace(",", ".").where(values.notna()))
            converted.append(str(column))
    return tuple(converted)


def _announce(path: Path, fmt: CsvFormat, name: str) -> None:
    plain = fmt.sep in (",", "\t" if path.suffix.lower() == ".tsv" else ",") and fmt.encoding in ("utf-8", "utf-8-sig") and not fmt.decimal_comma
    key = (str(path), fmt.sep, fmt.encoding)
    if not (fmt.sep_sniffed or fmt.encoding_sniffed) or plain or key in _announced:
        return
    _announced.add(key)
    print(f"{name} {path}: read as {fmt.describe()} (set data.sep / data.encoding to force)", file=sys.stderr)
