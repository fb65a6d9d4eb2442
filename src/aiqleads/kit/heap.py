"""The long-lived heap, kept out of the cyclic garbage collector's way.

A process that has imported its libraries (FastAPI, SQLAlchemy, scikit-learn, phonenumbers'
metadata, the gazetteer) holds a few hundred thousand objects that live as long as it does.
Every full collection walks all of them, and under load that happens often enough to show:
`GET /api/v1/users/me` at 20 concurrent clients had a p99 of 196 ms against a p50 of 27 ms,
and spent 1.5 ms of CPU per request. With the start-up heap frozen (`gc.freeze`, what
CPython offers for exactly this), the same load gives p99 33 ms and 1.08 ms per request
(`bench/http_floor.py`). Objects made later are collected as before.
"""

from __future__ import annotations

import gc


def freeze() -> None:
    """Move every object alive now to the permanent generation, which collections skip.
    (No collection first: it would cost every test's runtime a full pass, and the little
    garbage start-up leaves is given back by `thaw`.)"""
    gc.freeze()


def thaw() -> None:
    """Give the frozen objects back to the collector (at shutdown: a process that builds
    another runtime, as the tests do, must not keep the last one's cycles forever)."""
    gc.unfreeze()
