"""Request dependencies shared by all domains (`Annotated` aliases)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from aiqleads.runtime import Runtime

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_runtime(request: Request) -> Runtime:
    # async: FastAPI runs a plain function dependency in a worker thread, a hand-off on
    # every request (about 0.2 ms of CPU) for an attribute read.
    return runtime_of(request)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


_READ_ONLY = "_aiqleads_read_only"
F = TypeVar("F", bound=Callable[..., Any])


def read_only(endpoint: F) -> F:
    """Mark an endpoint that reads although its method is not GET (a search with a JSON body):
    its transaction does not take SQLite's write lock."""
    setattr(endpoint, _READ_ONLY, True)
    return endpoint


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's one transaction, committed before the response is sent."""
    runtime = runtime_of(request)
    write = request.method not in READ_METHODS and not getattr(
        request.scope.get("endpoint"), _READ_ONLY, False
    )
    async with runtime.db.unit_of_work(write=write) as session:
        yield session


# scope="function": the transaction ends when the endpoint returns, so a failed commit is
# an error response rather than a success the database never saw.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
