"""CSV answers, streamed: rows are written in chunks as the client reads them."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence

from starlette.requests import Request
from starlette.responses import StreamingResponse

__all__ = ["csv_response", "wants_csv"]

_CHUNK_ROWS = 1000


def wants_csv(request: Request, format_: str | None) -> bool:
    """``format=csv``, or ``Accept: text/csv`` without ``format=json``."""
    if format_ is not None:
        return format_ == "csv"
    accept = request.headers.get("accept", "")
    return any(part.split(";")[0].strip() == "text/csv" for part in accept.split(","))


async def _chunks(header: Sequence[str], rows: Iterable[Sequence[object]]) -> AsyncIterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for n, row in enumerate(rows, start=1):
        writer.writerow(row)
        if n % _CHUNK_ROWS == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def csv_response(
    header: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    filename: str,
    headers: Mapping[str, str] | None = None,
) -> StreamingResponse:
    """Stream ``rows`` under ``header`` as ``text/csv`` (a download named ``filename``)."""
    return StreamingResponse(
        _chunks(header, rows),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{filename}"', **(headers or {})},
    )
