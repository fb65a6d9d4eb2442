"""Who is calling: `CurrentPrincipal`, `CurrentUser`, `InteractiveUser`, `AdminUser`."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from aiqleads.accounts.models import User
from aiqleads.accounts.schemas import Scope
from aiqleads.accounts.service import AccountService, Principal
from aiqleads.kit import idempotency
from aiqleads.kit.deps import RuntimeDep, SessionDep
from aiqleads.kit.errors import AppError, Forbidden, Unauthorized
from aiqleads.runtime import Runtime

_bearer = HTTPBearer(auto_error=False, description="An access token, or an API key (aiq_...)")


RATE_WINDOW_SECONDS = 60.0


def client_address(request: Request) -> str:
    """The caller's address (behind a proxy uvicorn trusts, the X-Forwarded-For one)."""
    return request.client.host if request.client else ""


async def _count(request: Request, runtime: Runtime, key: str, limit: int, what: str) -> None:
    """One more request for `key` in the sliding minute; `X-RateLimit-*` headers on the
    answer either way, `429 rate_limited` beyond `limit`."""
    decision = await runtime.limiter.hit(
        key, limit, RATE_WINDOW_SECONDS, runtime.clock.now().timestamp()
    )
    # Every answer to this request carries them, errors and streamed files included
    # (kit.observability.RequestContextMiddleware adds them).
    request.state.rate_limit_headers = decision.headers()
    if not decision.allowed:
        raise AppError(
            f"More than {limit} {what} a minute; wait {decision.reset_seconds} s",
            code="rate_limited",
            status=429,
            headers={"Retry-After": decision.retry_after},
        )


async def get_principal(
    session: SessionDep,
    runtime: RuntimeDep,
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller, counted against their plan's requests per minute (`429 rate_limited`
    beyond it; `X-RateLimit-*` headers either way)."""
    if credentials is None:
        raise Unauthorized("Sign in: send Authorization: Bearer <token>")
    principal = await AccountService(session, runtime).authenticate(credentials.credentials)
    if runtime.settings.rate_limits:
        user = principal.user
        limit = user.rate_limit_per_minute or runtime.plans.of(user.plan).rate_limit_per_minute
        await _count(request, runtime, str(user.id), limit, "requests")
    return principal


async def _sign_in_attempt(request: Request, runtime: RuntimeDep) -> None:
    # Each of these requests hashes or checks a password (argon2: ~50 ms of CPU and 19 MiB)
    # or sends mail, before anyone is signed in: without a budget per client address, one
    # client could keep every core busy.
    limit = runtime.settings.sign_in_requests_per_minute
    if runtime.settings.rate_limits and limit > 0:
        await _count(
            request, runtime, f"sign-in|{client_address(request)}", limit, "sign-in requests"
        )


# Register, verify, log in, password reset: counted per client address.
SignInAttempt = Depends(_sign_in_attempt)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def require_scope(scope: Scope) -> Callable[[Principal], Coroutine[Any, Any, User]]:
    async def check(principal: CurrentPrincipal) -> User:
        if scope not in principal.scopes:
            raise Forbidden(f"This needs the {scope.value!r} scope", code="insufficient_scope")
        return principal.user

    return check


async def _interactive(principal: CurrentPrincipal) -> User:
    if not principal.interactive:
        raise Forbidden("This needs a signed-in user, not an API key", code="interactive_only")
    return principal.user


async def _admin(principal: CurrentPrincipal) -> User:
    if not principal.operator:
        raise Forbidden("Operators only", code="forbidden")
    return principal.user


async def _lead_viewer(principal: CurrentPrincipal) -> Principal:
    if Scope.LEADS_READ not in principal.scopes:
        raise Forbidden("This needs the 'leads:read' scope", code="insufficient_scope")
    return principal


InteractiveUser = Annotated[User, Depends(_interactive)]
AdminUser = Annotated[User, Depends(_admin)]
AccountReader = Annotated[User, Depends(require_scope(Scope.ACCOUNT_READ))]
AccountWriter = Annotated[User, Depends(require_scope(Scope.ACCOUNT_WRITE))]
LeadReader = Annotated[User, Depends(require_scope(Scope.LEADS_READ))]
# Spending credits (cart, checkout, disputes) is more than reading leads.
LeadBuyer = Annotated[User, Depends(require_scope(Scope.LEADS_BUY))]
# Who sees which leads in full depends on more than the user: the key's scopes too.
LeadViewer = Annotated[Principal, Depends(_lead_viewer)]


def _idempotency(
    required: bool,
) -> Callable[..., Coroutine[Any, Any, idempotency.Idempotency]]:
    async def check(
        request: Request, principal: CurrentPrincipal, session: SessionDep, runtime: RuntimeDep
    ) -> idempotency.Idempotency:
        return await idempotency.begin(
            session, request, str(principal.user.id), runtime.clock.now(), required=required
        )

    return check


# State-changing commerce endpoints: an `Idempotency-Key` header makes a retry safe
# (kit.idempotency); the endpoint ends with `await idem.complete(session, status, body)`.
Idempotent = Annotated[idempotency.Idempotency, Depends(_idempotency(required=False))]
# Checkout requires it: a buyer whose answer was lost must get the order back on retrying,
# not a puzzling `cart_empty`.
IdempotentRequired = Annotated[idempotency.Idempotency, Depends(_idempotency(required=True))]
