"""HTTP endpoints of accounts: parse, authorise, call the service, return a schema."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Request, Response, status

from aiqleads.accounts.deps import (
    AccountReader,
    AccountWriter,
    AdminUser,
    InteractiveUser,
    SignInAttempt,
    client_address,
)
from aiqleads.accounts.models import User
from aiqleads.accounts.schemas import (
    Accepted,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyOut,
    LoginIn,
    PasswordResetConfirmIn,
    PasswordResetRequestIn,
    RateLimitIn,
    RateLimitOut,
    RecoveryCodesOut,
    RefreshIn,
    RegisterIn,
    TokenPair,
    TotpCodeIn,
    TotpSetupOut,
    TwoFactorStatus,
    UserOut,
    UserPatch,
    VerifiedOut,
    VerifyEmailIn,
)
from aiqleads.accounts.service import AccountService
from aiqleads.kit.deps import RuntimeDep, SessionDep

auth = APIRouter(prefix="/auth", tags=["auth"])
users = APIRouter(prefix="/users", tags=["users"])
api_keys = APIRouter(prefix="/api-keys", tags=["api-keys"])
admin_users = APIRouter(prefix="/admin/users", tags=["admin: users"])


def no_store(response: Response) -> None:
    """Responses that carry tokens, keys or secrets are not to be cached (RFC 6749 5.1)."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"


NoStore = Depends(no_store)


@auth.post(
    "/register",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    dependencies=[SignInAttempt],
)
async def register(
    body: RegisterIn, request: Request, session: SessionDep, runtime: RuntimeDep
) -> Accepted:
    """Start an account. The answer is the same whether or not the e-mail is taken."""
    await AccountService(session, runtime).register(
        body.email, body.password, body.name, requester=client_address(request)
    )
    return Accepted(detail="Check your e-mail to continue.")


@auth.post("/verify-email", response_model=VerifiedOut, dependencies=[SignInAttempt])
async def verify_email(
    body: VerifyEmailIn, session: SessionDep, runtime: RuntimeDep
) -> VerifiedOut:
    """Confirm an address with the e-mailed token and the password registered with it."""
    await AccountService(session, runtime).verify_email(body.token, body.password)
    return VerifiedOut()


@auth.post("/login", response_model=TokenPair, dependencies=[SignInAttempt, NoStore])
async def login(body: LoginIn, session: SessionDep, runtime: RuntimeDep) -> TokenPair:
    return await AccountService(session, runtime).login(body.email, body.password, body.totp_code)


@auth.post("/refresh", response_model=TokenPair, dependencies=[NoStore])
async def refresh(body: RefreshIn, session: SessionDep, runtime: RuntimeDep) -> TokenPair:
    return await AccountService(session, runtime).refresh(body.refresh_token)


@auth.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(body: RefreshIn, session: SessionDep, runtime: RuntimeDep) -> Response:
    await AccountService(session, runtime).logout(body.refresh_token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@auth.post(
    "/password-reset/request",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    dependencies=[SignInAttempt],
)
async def password_reset_request(
    body: PasswordResetRequestIn, request: Request, session: SessionDep, runtime: RuntimeDep
) -> Accepted:
    await AccountService(session, runtime).request_password_reset(
        body.email, requester=client_address(request)
    )
    return Accepted(detail="If the address has an account, a reset link is on its way.")


@auth.post(
    "/password-reset/confirm", status_code=status.HTTP_204_NO_CONTENT, dependencies=[SignInAttempt]
)
async def password_reset_confirm(
    body: PasswordResetConfirmIn, session: SessionDep, runtime: RuntimeDep
) -> Response:
    """Set a new password and sign out every session."""
    await AccountService(session, runtime).confirm_password_reset(body.token, body.new_password)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@auth.post("/2fa/setup", response_model=TotpSetupOut, dependencies=[NoStore])
async def totp_setup(
    user: InteractiveUser, session: SessionDep, runtime: RuntimeDep
) -> TotpSetupOut:
    secret, uri = await AccountService(session, runtime).totp_setup(user)
    return TotpSetupOut(secret=secret, otpauth_uri=uri)


@auth.post("/2fa/enable", response_model=RecoveryCodesOut, dependencies=[NoStore])
async def totp_enable(
    body: TotpCodeIn, user: InteractiveUser, session: SessionDep, runtime: RuntimeDep
) -> RecoveryCodesOut:
    """Turn 2FA on with a first code; the recovery codes are shown only here."""
    codes = await AccountService(session, runtime).totp_enable(user, body.code)
    return RecoveryCodesOut(recovery_codes=codes)


@auth.post("/2fa/disable", response_model=TwoFactorStatus)
async def totp_disable(
    body: TotpCodeIn, user: InteractiveUser, session: SessionDep, runtime: RuntimeDep
) -> TwoFactorStatus:
    await AccountService(session, runtime).totp_disable(user, body.code)
    return TwoFactorStatus(enabled=False)


def user_out(user: User) -> UserOut:
    return UserOut.model_validate(
        {
            **{
                k: getattr(user, k)
                for k in ("id", "email", "name", "phone", "time_zone", "created_at")
            },
            "role": user.role.value,
            "email_verified": user.email_verified_at is not None,
            "preferred_markets": user.preferred_markets,
            "notification_preferences": user.notification_preferences,
            "two_factor_enabled": user.totp_enabled_at is not None,
        }
    )


@users.get("/me", response_model=UserOut)
async def get_me(user: AccountReader) -> UserOut:
    return user_out(user)


@users.patch("/me", response_model=UserOut)
async def patch_me(
    body: UserPatch, user: AccountWriter, session: SessionDep, runtime: RuntimeDep
) -> UserOut:
    return user_out(await AccountService(session, runtime).update_profile(user, body))


@api_keys.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    dependencies=[NoStore],
)
async def create_api_key(
    body: ApiKeyCreate, user: InteractiveUser, session: SessionDep, runtime: RuntimeDep
) -> ApiKeyCreated:
    """Create a scoped key. Its secret is in this response and nowhere else, ever."""
    row, secret = await AccountService(session, runtime).create_api_key(user, body)
    return ApiKeyCreated(**ApiKeyOut.model_validate(row).model_dump(), key=secret)


@api_keys.get("", response_model=ApiKeyList)
async def list_api_keys(
    user: InteractiveUser, session: SessionDep, runtime: RuntimeDep
) -> ApiKeyList:
    rows = await AccountService(session, runtime).list_api_keys(user)
    return ApiKeyList(items=[ApiKeyOut.model_validate(r) for r in rows])


@api_keys.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_api_key(
    key_id: uuid.UUID, user: InteractiveUser, session: SessionDep, runtime: RuntimeDep
) -> Response:
    await AccountService(session, runtime).revoke_api_key(user, key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@admin_users.put("/{user_id}/rate-limit", response_model=RateLimitOut)
async def set_rate_limit(
    user_id: uuid.UUID,
    body: RateLimitIn,
    operator: AdminUser,
    session: SessionDep,
    runtime: RuntimeDep,
) -> RateLimitOut:
    """Set an account's API requests per minute (Enterprise's custom limit), or `null` for its
    plan's (audited)."""
    user = await AccountService(session, runtime).set_rate_limit(user_id, body.per_minute, operator)
    plan = runtime.plans.of(user.plan)
    return RateLimitOut(
        user_id=user.id,
        plan=plan.id,
        per_minute=user.rate_limit_per_minute or plan.rate_limit_per_minute,
        custom=user.rate_limit_per_minute is not None,
    )
