"""FOCUS datasets in Parquet: typed columns, written a row group at a time (DESIGN §16).

The rows are the ones the CSV dataset holds (:func:`~.records.focus_rows`, cells as text,
``""`` for null); :class:`ParquetSink` turns each batch of them into typed Arrow columns
and appends it to the file as one row group, so a month is never in memory. The types:

- **money** (``BilledCost``, ``EffectiveCost``, ``ContractedCost``): ``decimal128(38, 9)``,
  the stored nanos exactly; **split metrics** (``ListCost``, ``PricingQuantity``,
  ``ConsumedQuantity``, ``x_DiscountAmount``): ``decimal128(38, 15)``, the 1e-15 units
  they are split in (:mod:`.split`); ``ListUnitPrice``: ``decimal128(38, 18)``. FOCUS
  defines these columns as Decimal; a Parquet decimal is exact, where a double would round
  the nanos the export is proven to sum to. A value with more decimals than its column
  holds fails the write loudly (Arrow refuses to rescale with a loss); nothing is rounded.
- **date/times** (``BillingPeriodStart`` ... ``ChargePeriodEnd``): ``timestamp[us, UTC]``.
- everything else, including the JSON columns (``Tags``, ``AllocatedTags``,
  ``AllocatedMethodDetails``), ``string``; an empty cell is null.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

__all__ = ["ROW_GROUP_ROWS", "ParquetSink", "arrow_schema", "column_type"]

ROW_GROUP_ROWS = 32_768
"""Rows per row group: what one batch of the export holds in memory as Arrow columns."""

_MONEY = pa.decimal128(38, 9)
_FINE = pa.decimal128(38, 15)
_PRICE = pa.decimal128(38, 18)
_TIME = pa.timestamp("us", tz="UTC")
_TYPES: dict[str, pa.DataType] = {
    "BilledCost": _MONEY,
    "EffectiveCost": _MONEY,
    "ContractedCost": _MONEY,
    "ListCost": _FINE,
    "PricingQuantity": _FINE,
    "ConsumedQuantity": _FINE,
    "x_DiscountAmount": _FINE,
    "ListUnitPrice": _PRICE,
    "BillingPeriodStart": _TIME,
    "BillingPeriodEnd": _TIME,
    "ChargePeriodStart": _TIME,
    "ChargePeriodEnd": _TIME,
}


def column_type(name: str) -> pa.DataType:
    """The Arrow type of a FOCUS column (``string`` unless listed in the module docstring)."""
    return _TYPES.get(name, pa.string())


def arrow_schema(columns: Sequence[str]) -> pa.Schema:
    """The dataset's schema: every column nullable, in file order."""
    return pa.schema([pa.field(name, column_type(name), nullable=True) for name in columns])


_NULL_TEXT = pa.scalar(None, pa.string())


def _column(values: Sequence[str], kind: pa.DataType) -> pa.Array:
    """One column of text cells as ``kind`` (``""`` -> null), converted by Arrow in C."""
    text = pa.array(values, pa.string())
    text = pc.if_else(pc.equal(text, ""), _NULL_TEXT, text)
    return text if kind == pa.string() else text.cast(kind)


class ParquetSink:
    """Appends batches of FOCUS rows (text cells in ``columns`` order) to a Parquet file.

    Args:
        fh: the binary file written (the export's temp file; the caller syncs it).
        columns: the dataset's columns.
    """

    quoted = False
    """Cells as plain text, not CSV fields."""
    batch_rows = ROW_GROUP_ROWS

    def __init__(self, fh: IO[bytes], columns: Sequence[str]) -> None:
        self._schema = arrow_schema(columns)
        self._kinds = [column_type(name) for name in columns]
        self._writer = pq.ParquetWriter(fh, self._schema, compression="zstd")
        self._empty = True

    def write(self, rows: Sequence[Sequence[str]]) -> None:
        """Append ``rows`` as one row group."""
        if not rows:
            return
        cells = list(zip(*rows, strict=True))
        arrays = [_column(col, kind) for col, kind in zip(cells, self._kinds, strict=True)]
        self._writer.write_table(pa.Table.from_arrays(arrays, schema=self._schema))
        self._empty = False

    def close(self) -> None:
        """Write the footer (an empty dataset still gets its schema)."""
        if self._empty:
            self._writer.write_table(self._schema.empty_table())
        self._writer.close()
