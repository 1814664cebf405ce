"""CSV cells that a spreadsheet would run as a formula ("CSV injection", OWASP): every CSV
the project writes for people to open (the admin export, the analysis report's tables,
the requester's review files, benchmark results) passes its text cells through here, and
the analysis reads them back with `unquote`. Pure Python with no imports, so the web
side, the analysis and the benchmarks share it without loading each other.

A text cell that begins with one of FORMULA_START is written with a leading single quote
(`'=SUM(1)`); numbers are never changed (a negative number stays a number).
"""
from __future__ import annotations

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cell):
    """Return a text cell with a leading single quote when a spreadsheet would read it as
    a formula, else the cell unchanged (numbers and None included)."""
    if isinstance(cell, str) and cell.startswith(FORMULA_START):
        return "'" + cell
    return cell


def unquote(cell: str) -> str:
    """Return the text a neutralised cell stood for (one leading quote before a formula
    character removed), else `cell` unchanged."""
    if cell.startswith("'") and cell[1:2] in FORMULA_START:
        return cell[1:]
    return cell


def neutralise_row(row):
    """Return a list or dict row with every cell neutralised (csv.writer / DictWriter)."""
    if isinstance(row, dict):
        return {k: neutralise(v) for k, v in row.items()}
    return [neutralise(v) for v in row]


def _text_dtype(kind: str) -> bool:
    # pandas names text columns "object", "str" (pandas 3's default) or "string[...]".
    return kind in ("object", "str") or kind.startswith("string")


def neutralise_frame(df):
    """Return a copy of the pandas DataFrame `df` whose text cells (columns of a text or
    categorical dtype, the index and the column labels) are neutralised; numeric columns
    are untouched."""
    out = df.copy()
    for col in out.columns:
        kind = str(out[col].dtype)
        if kind == "category":
            out[col] = out[col].cat.rename_categories(neutralise)
        elif _text_dtype(kind):
            out[col] = out[col].map(neutralise)
    out.index = _labels(out.index)
    out.columns = _labels(out.columns)
    return out


def _labels(index):
    # Index.map keeps the kind: tuples come back as a MultiIndex with its names.
    if index.nlevels > 1:
        return index.map(lambda t: tuple(neutralise(x) for x in t))
    return index.map(neutralise) if _text_dtype(str(index.dtype)) else index
