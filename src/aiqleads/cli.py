"""The `aiqleads` command: serve, worker, scheduler, db, users, markets, demo."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import NoReturn, TypeVar

import typer
import uvicorn
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from aiqleads.ingest.models import IngestionRun, RunStatus
from aiqleads.ingest.service import COUNT_KEYS
from aiqleads.kit.errors import Conflict
from aiqleads.kit.migrate import upgrade
from aiqleads.kit.observability import configure_logging
from aiqleads.runtime import Runtime
from aiqleads.settings import Settings, SettingsError

app = typer.Typer(help="AIQLeads: the lead marketplace service.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
users_app = typer.Typer(help="Accounts.", no_args_is_help=True)
markets_app = typer.Typer(help="Markets.", no_args_is_help=True)
demo_app = typer.Typer(help="Demo data.", no_args_is_help=True)
fraud_app = typer.Typer(help="The fraud model.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(markets_app, name="markets")
app.add_typer(demo_app, name="demo")
app.add_typer(fraud_app, name="fraud")
console = Console()
T = TypeVar("T")


def _read_settings() -> Settings:
    """The settings from the environment; a value that does not validate is a usage error whose
    message names the variable but never repeats its value (a URL may carry a password)."""
    try:
        return Settings()
    except ValidationError as exc:
        console.print("[red]invalid settings:[/red]")
        for error in exc.errors(include_input=False, include_url=False, include_context=False):
            name = "AIQLEADS_" + "_".join(str(part) for part in error["loc"]).upper()
            console.print(f"  {name}: {error['msg']}", style="red", markup=False, highlight=False)
        raise typer.Exit(2) from None


def _settings() -> Settings:
    settings = _read_settings()
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
    if_empty: bool = typer.Option(False, "--if-empty", help="Only when there are no leads yet"),
    count: int = typer.Option(2000, "--count", min=1, help="How many raw records to generate"),
    seed: int = typer.Option(7, help="Generator seed (same seed, same data)"),
) -> None:
    """Load demo accounts and generated leads through the real pipeline (never in production)."""
    from aiqleads import demo

    if _read_settings().is_production:
        console.print("[red]demo data is never loaded in production[/red]")
        raise typer.Exit(2)

    async def work(runtime: Runtime) -> demo.DemoResult | None:
        if if_empty and not await demo.is_empty(runtime):
            return None
        with _progress("generating and ingesting", count) as advance:
            return await demo.load(runtime, count=count, seed=seed, progress=advance)

    loaded = _with_runtime(work)
    if loaded is None:
        console.print("demo data: database not empty, nothing loaded")
        return
    _print_runs(loaded.runs)
    for account in loaded.accounts:
        console.print(
            f"demo {'admin' if account.admin else 'agent'}: {account.email} / {account.password}"
        )


@contextlib.contextmanager
def _progress(label: str, total: int | None) -> Iterator[Callable[[int], None]]:
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def _print_runs(runs: list[IngestionRun]) -> None:
    """One column per run, so the summary fits a terminal whatever the number of counts."""
    table = Table("")
    for run in runs:
        table.add_column(run.source, justify="right", no_wrap=True)
    table.add_row("status", *(run.status.value for run in runs))
    for key in COUNT_KEYS:
        table.add_row(key, *(str(run.counts.get(key, 0)) for run in runs))
    console.print(table)
    for run in runs:
        for reason, count in sorted(run.quarantined_by_reason.items()):
            console.print(f"{run.source}: quarantined {count} x {reason}")
        for error in run.errors:
            console.print(f"[red]{run.source}: {error}[/red]")


@app.command()
def ingest(
    source: str = typer.Argument(..., help="Source slug (see the sources file)"),
    file: Path | None = typer.Option(None, "--file", help="Input file (CSV sources)"),
) -> None:
    """Run one source now: fetch (or read --file), clean, de-duplicate, score and store."""
    from aiqleads.ingest.service import run_source

    async def work(runtime: Runtime) -> IngestionRun:
        config = runtime.sources.get(source)
        if config is None:
            known = ", ".join(s.slug for s in runtime.sources.all())
            console.print(f"[red]unknown source {source!r}; configured: {known}[/red]")
            raise typer.Exit(2)
        if file is not None and not file.is_file():
            console.print(f"[red]{file} is not a readable file[/red]")
            raise typer.Exit(2)
        # Refused before a run is started: no failed run is recorded for a usage error.
        if config.type == "csv" and file is None and not config.options.get("path"):
            console.print(f"[red]{source} is a CSV source: pass --file PATH[/red]")
            raise typer.Exit(2)
        try:
            with _progress(f"ingesting {source}", None) as advance:
                return await run_source(runtime, config, trigger="cli", file=file, progress=advance)
        except Conflict as exc:
            console.print(f"[red]{exc.message}; try again when it has finished[/red]")
            raise typer.Exit(1) from None

    run = _with_runtime(work)
    _print_runs([run])
    if run.status is RunStatus.FAILED:
        raise typer.Exit(1)


@fraud_app.command("train")
def fraud_train(
    bootstrap: bool = typer.Option(
        False, help="Write the packaged starting model from generated data instead"
    ),
    synthetic: int = typer.Option(
        20_000, min=0, help="Generated examples mixed in while reviewed labels are few"
    ),
    force: bool = typer.Option(
        False, "--force", help="Activate the new model even if its held-out ROC AUC is below 0.6"
    ),
) -> None:
    """Train a new fraud model version from operators' review decisions."""
    from aiqleads.quality import bootstrap as boot
    from aiqleads.quality import fraud
    from aiqleads.quality import service as quality

    async def work(runtime: Runtime) -> str:
        rows, labels = boot.synthetic_rows(
            synthetic,
            seed=11,
            now=runtime.clock.now(),
            markets=runtime.markets,
            sources=runtime.sources,
        )
        if bootstrap:
            try:
                model, metrics = fraud.train(rows, labels, 0)
            except fraud.TrainingRefused as exc:
                _refused(exc)
            path = Path(fraud.__file__).parent / "data" / "fraud_bootstrap.json"
            path.write_text(
                json.dumps(
                    {
                        "features": list(model.features),
                        "parameters": model.parameters(),
                        "metrics": metrics,
                    },
                    indent=2,
                )
                + "\n"
            )
            return f"bootstrap model written to {path}: {metrics}"
        try:
            async with runtime.transaction() as session:
                reviewed, reviewed_labels = await quality.review_labels(session)
                row = await quality.save_model(
                    session,
                    [*reviewed, *rows],
                    [*reviewed_labels, *labels],
                    runtime.clock,
                    source=f"{len(reviewed)} reviewed + {len(rows)} generated",
                    force=force,
                )
                return (
                    f"fraud model v{row.version} trained on {row.training_rows} rows: {row.metrics}"
                )
        except fraud.TrainingRefused as exc:
            _refused(exc)

    console.print(_with_runtime(work))


def _refused(exc: Exception) -> NoReturn:
    console.print(f"[red]no fraud model trained: {exc}[/red]")
    raise typer.Exit(1) from None
