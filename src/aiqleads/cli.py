"""The `aiqleads` command: serve, worker, scheduler, db, users, markets, demo."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer
import uvicorn
from rich.console import Console
from rich.table import Table

from aiqleads.kit.migrate import upgrade
from aiqleads.kit.observability import configure_logging
from aiqleads.runtime import Runtime
from aiqleads.settings import Settings, SettingsError

app = typer.Typer(help="AIQLeads: the lead marketplace service.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
users_app = typer.Typer(help="Accounts.", no_args_is_help=True)
markets_app = typer.Typer(help="Markets.", no_args_is_help=True)
demo_app = typer.Typer(help="Demo data.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(markets_app, name="markets")
app.add_typer(demo_app, name="demo")
console = Console()
T = TypeVar("T")


def _settings() -> Settings:
    settings = Settings()
    try:
        settings.check_production()
    except SettingsError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    configure_logging(settings.log_level, settings.json_logs)
    return settings


def _with_runtime(work: Callable[[Runtime], Awaitable[T]]) -> T:
    async def main() -> T:
        runtime = Runtime(_settings())
        await runtime.startup()
        try:
            return await work(runtime)
        finally:
            await runtime.shutdown()

    return asyncio.run(main())


@app.command()
def serve(
    host: str | None = typer.Option(None, help="Default: AIQLEADS_HOST"),
    port: int | None = typer.Option(None, help="Default: AIQLEADS_PORT"),
) -> None:
    """Serve the API (and, without Redis, the background jobs) over HTTP."""
    settings = _settings()
    uvicorn.run(
        "aiqleads.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        log_config=None,
        proxy_headers=True,
    )


@app.command()
def worker() -> None:
    """Run background jobs from the Redis queue (needs AIQLEADS_REDIS_URL)."""
    if not _settings().redis_url:
        console.print(
            "[red]aiqleads worker needs AIQLEADS_REDIS_URL; without it `serve` runs jobs.[/red]"
        )
        raise typer.Exit(2)
    _with_runtime(lambda runtime: runtime.jobs.run_worker())


@app.command()
def scheduler() -> None:
    """Kick periodic jobs onto the Redis queue (run exactly one per deployment)."""
    if not _settings().redis_url:
        console.print(
            "[red]aiqleads scheduler needs AIQLEADS_REDIS_URL; without it `serve` schedules.[/red]"
        )
        raise typer.Exit(2)
    _with_runtime(lambda runtime: runtime.jobs.run_scheduler())


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Migrate the database (a blank one is created from nothing)."""
    settings = _settings()
    upgrade(settings.database_url, revision)
    console.print(f"database at {revision}")


@users_app.command("create-admin")
def create_admin(
    email: str = typer.Option(..., help="The operator's e-mail address"),
    password: str = typer.Option(..., help="At least 8 characters, not a common password"),
    name: str = typer.Option("Administrator", help="Display name"),
) -> None:
    """Create a verified admin (or promote the existing account with that e-mail)."""
    from aiqleads.accounts.service import AccountService
    from aiqleads.kit.errors import AppError

    async def work(runtime: Runtime) -> str:
        async with runtime.transaction() as session:
            user = await AccountService(session, runtime).create_admin(email, password, name)
            return str(user.id)

    try:
        user_id = _with_runtime(work)
    except AppError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from exc
    console.print(f"admin {email} ready (id {user_id})")


@markets_app.command("list")
def markets_list() -> None:
    """The configured markets."""
    from aiqleads.markets.catalog import load_markets

    table = Table("name", "states", "centre")
    # Slugs and zones are copied into config and API calls: never wrap them.
    table.add_column("slug", no_wrap=True)
    table.add_column("time zone", no_wrap=True)
    for market in load_markets(_settings().markets_file).all():
        table.add_row(
            market.name,
            ",".join(market.states),
            f"{market.center.lat:.4f}, {market.center.lon:.4f}",
            market.slug,
            market.time_zone,
        )
    console.print(table)


@demo_app.command("load")
def demo_load(
    if_empty: bool = typer.Option(False, "--if-empty", help="Only when there are no accounts yet"),
) -> None:
    """Load demo accounts (never in production)."""
    from aiqleads import demo

    if Settings().is_production:
        console.print("[red]demo data is never loaded in production[/red]")
        raise typer.Exit(2)

    async def work(runtime: Runtime) -> list[demo.DemoAccount] | None:
        if if_empty and not await demo.is_empty(runtime):
            return None
        return await demo.load(runtime)

    loaded = _with_runtime(work)
    if loaded is None:
        console.print("demo data: database not empty, nothing loaded")
        return
    for account in loaded:
        console.print(
            f"demo {'admin' if account.admin else 'agent'}: {account.email} / {account.password}"
        )
