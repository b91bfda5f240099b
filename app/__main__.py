"""Command line: ``python -m app serve | migrate | token USER | sweep | tier | storage init``.

Every command reads the same settings (environment and ``TUSGATE_CONFIG``), so a command run
beside a gateway acts on the same database, stores and key.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import sys
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import TypeVar

from app import db as database
from app import logs
from app.auth.local import LocalIssuer
from app.context import Context, build_store, open_context
from app.db.migrations import migrate
from app.jobs.sweeper import sweep
from app.jobs.tiering import tier
from app.settings import Settings, load_settings
from app.storage.base import ExpiryPolicy, Provisioner

T = TypeVar("T")
SIGN_IN_FILE = "sign-in-url"
LIFECYCLE_MARGIN_DAYS = 2  # the bucket's rules act this long after the sweeper should have


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--host", help="address to listen on (default TUSGATE_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default TUSGATE_PORT or 8080)")
    commands.add_parser("migrate", help="bring the database schema up to date")
    token = commands.add_parser("token", help="print a bearer token from the local issuer")
    token.add_argument("user", help="the user id (the token's subject)")
    token.add_argument("--role", action="append", default=[], help="a role (repeatable)")
    token.add_argument("--ttl", type=int, help="lifetime in seconds")
    sweep_command = commands.add_parser("sweep", help="expire uploads and files, free bytes, once")
    sweep_command.add_argument(
        "--now", type=_moment, help="sweep as if it were this ISO 8601 time (a simulated clock)"
    )
    tier_command = commands.add_parser(
        "tier", help="copy files into cold locations and drop old hot copies, once"
    )
    tier_command.add_argument(
        "--now", type=_moment, help="tier as if it were this ISO 8601 time (a simulated clock)"
    )
    storage = commands.add_parser("storage", help="manage the stores")
    storage_commands = storage.add_subparsers(dest="storage_command", required=True)
    storage_commands.add_parser(
        "init", help="create buckets/directories and the buckets' lifecycle rules"
    )
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = load_settings()
    except (ValueError, OSError) as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        return _serve(settings, args.host or settings.host, args.port or settings.port)
    if args.command == "migrate":
        applied = asyncio.run(_migrate(settings))
        print(f"applied migrations: {applied}" if applied else "schema up to date")
        return 0
    if args.command == "token":
        issuer = LocalIssuer.from_file(settings.effective_issuer_key_file)
        print(issuer.issue(args.user, args.role, args.ttl or settings.token_ttl_seconds))
        return 0
    if args.command == "storage":
        for line in asyncio.run(_init_storage(settings)):
            print(line)
        return 0
    if args.command == "tier":
        tiered = asyncio.run(_run(settings, tier, args.now))
        print(
            f"copied {tiered.copied} files into cold locations, dropped {tiered.dropped} hot"
            f" copies, {tiered.failed} failed"
        )
        return 0
    report = asyncio.run(_run(settings, sweep, args.now))
    print(
        f"expired {report.expired} uploads and {report.files_expired} files,"
        f" completed {report.completed}, freed {report.released}"
    )
    return 0


def _serve(settings: Settings, host: str, port: int) -> int:
    from app import servers
    from app.main import create_app

    if not settings.oidc_issuer:
        _offer_sign_in(settings, host, port)

    logs.configure(settings.log_format)
    app = create_app(settings)

    def drain() -> None:
        """Stop taking uploads and tell the PATCHes in flight to save what they have; the
        server then stops listening and waits for the answers."""
        context = getattr(app.state, "context", None)
        if context is not None:
            context.drain()

    logging.getLogger("tusgate").info(
        "tusgate listening on http://%s:%d/ (%s)", host, port, settings.server
    )
    asyncio.run(servers.serve(app, settings, host, port, drain))
    return 0


def _offer_sign_in(settings: Settings, host: str, port: int) -> None:
    """Local mode: a URL that signs the one who opens it in as a local admin, as Jupyter's does.
    The token rides in the fragment, which browsers never send to a server; the page removes it
    from the address bar at once. It is a credential, so it goes to a terminal only — never to
    a log: without one, it is written to ``DATA_DIR/sign-in-url`` (readable by its owner)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    issuer = LocalIssuer.from_file(settings.effective_issuer_key_file)
    token = issuer.issue("admin", [settings.admin_role], settings.token_ttl_seconds)
    shown = "localhost" if host in ("0.0.0.0", "::") else host
    url = f"http://{shown}:{port}/#token={token}"
    if sys.stdout.isatty():
        print(f"Open the page, signed in as a local admin: {url}", flush=True)
        return
    path = settings.data_dir / SIGN_IN_FILE
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(url + "\n")
    print(f"The page's sign-in address (a local admin's token) is in {path}", flush=True)


async def _migrate(settings: Settings) -> list[int]:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = await database.connect(settings.effective_database_url)
    try:
        return await migrate(db)
    finally:
        await db.disconnect()


async def _run(
    settings: Settings,
    job: Callable[[Context, datetime | None], Awaitable[T]],
    now: datetime | None,
) -> T:
    async with AsyncExitStack() as stack:
        return await job(await open_context(settings, stack), now)


async def _init_storage(settings: Settings) -> list[str]:
    """Prepare every location and the restore cache; S3 buckets get expiry rules a little
    beyond the gateway's own, and none for files where the location forbids physical
    deletion."""
    done = []
    unfinished_days = math.ceil(settings.upload_expiry_seconds / 86400) + 1
    for location in (*settings.locations, settings.cache):
        kept: int | None
        if location is settings.cache:
            kept = math.ceil(settings.cache_ttl_hours / 24)
        else:
            kept = settings.retention_days if location.allow_physical_deletion else None
        policy = ExpiryPolicy(
            unfinished_days=unfinished_days,
            retention_days=None if kept is None else kept + LIFECYCLE_MARGIN_DAYS,
        )
        store = build_store(location, settings)
        await store.start()
        try:
            if isinstance(store, Provisioner):
                await store.provision(policy)
                done.append(f"{location.name}: bucket {location.s3.bucket!r} and its rules ready")
            else:
                done.append(f"{location.name}: ready")
        finally:
            await store.close()
    return done


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


if __name__ == "__main__":
    sys.exit(main())
