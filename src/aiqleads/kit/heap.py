"""The long-lived heap, kept out of the cyclic garbage collector's way.

A process that has imported its libraries (FastAPI, SQLAlchemy, scikit-learn, phonenumbers'
metadata, the gazetteer) holds a few hundred thousand objects that live as long as it does.
Every full collection walks all of them, and under load that happens often enough to show:
`GET /api/v1/users/me` at 20 concurrent clients had a p99 of 196 ms against a p50 of 27 ms,
and spent 1.5 ms of CPU per request. With the start-up heap frozen (`gc.freeze`, what
CPython offers for exactly this), the same load gives p99 33 ms and 1.08 ms per request
(`bench/http_floor.py`). Objects made later are collected as before.

The youngest generation is also collected less often: after 50,000 new container objects
instead of CPython's 700. Ingestion makes and drops hundreds of thousands of short-lived
containers per batch (records, fields, problems, rows), almost none of them in cycles, and at
700 the collector ran about 90 times per 1,000 records and dragged older generations along:
8% of the pipeline's time. With 50,000: 1,078 -> 1,190-1,216 records/s on 20,000 records
(`bench/pipeline_throughput.py`, SQLite, same machine). Cyclic garbage waits a little longer;
memory is not what this service is short of.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000
_saved: list[tuple[int, int, int]] = []


def freeze() -> None:
    """Move every object alive now to the permanent generation, which collections skip, and
    collect the youngest generation less often. (No collection first: it would cost every
    test's runtime a full pass, and the little garbage start-up leaves is given back by
    `thaw`.)"""
    gc.freeze()
    young, middle, old = gc.get_threshold()
    if not _saved:
        _saved.append((young, middle, old))
    gc.set_threshold(max(young, YOUNG_THRESHOLD), middle, old)


def thaw() -> None:
    """Give the frozen objects back to the collector and its thresholds back to what they
    were (at shutdown: a process that builds another runtime, as the tests do, must not keep
    the last one's cycles forever)."""
    gc.unfreeze()
    if _saved:
        gc.set_threshold(*_saved.pop())
