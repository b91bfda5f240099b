"""The long-lived parts of a running gateway, built from the settings and shared by handlers.

Everything here is either stateless or shared through a service (database, Redis, S3): an
instance holds nothing that another instance would need, except the running hashes, which are
an optimisation with a fallback (see ``tus/hashes.py``), and the owners of uploads, which never
change (``tus/owners.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import TaskGroup
from databases import Database

from app import db as database
from app.auth.local import LocalIssuer
from app.auth.middleware import Verifier, remembering, require_role
from app.auth.oidc import OIDCVerifier, provider_client
from app.db.migrations import migrate
from app.locks.base import Locker
from app.locks.memory import MemoryLocker
from app.locks.redis import RedisLocker
from app.quota.downloads import MemoryMeter, Meter, RedisMeter
from app.settings import COLD, LocationSettings, Settings
from app.storage.base import Store
from app.storage.filesystem import ColdFilesystemStore, FilesystemStore
from app.storage.s3 import S3Store
from app.tus.hashes import RunningHashes
from app.tus.owners import Owners
from app.workers import Workers


@dataclass
class Context:
    settings: Settings
    db: Database
    stores: dict[str, Store]  # by location name, and the restore cache's as CACHE
    locker: Locker
    issuer: LocalIssuer
    verify: Verifier
    meter: Meter  # download quotas' counters
    hashes: RunningHashes = field(default_factory=RunningHashes)
    owners: Owners = field(default_factory=Owners)
    tasks: TaskGroup | None = None
    # Shutting down: no new uploads, and the PATCHes in flight save what they have and end.
    draining: bool = False
    # How to make each PATCH in flight on this instance stop reading and save what it has.
    receiving: set[Callable[[], None]] = field(default_factory=set)
    # Uploads a PATCH of this instance holds: it records its own store commits. Each maps to
    # the offset committed in the store, once the PATCH's writer knows it (0 before).
    patching: dict[str, int] = field(default_factory=dict)
    # Threads for the PATCH batches' writes and hashes while many uploads receive at once.
    workers: Workers = field(default_factory=Workers)

    @property
    def upload_store(self) -> Store:
        return self.stores[self.settings.upload_location]

    def drain(self) -> None:
        """Start a graceful shutdown (SIGTERM): the server then waits for the answers."""
        self.draining = True
        for stop in list(self.receiving):
            stop()

    def spawn(self, job: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``job`` in the background for as long as the gateway runs."""
        if self.tasks is not None:
            self.tasks.start_soon(job)


def build_store(location: LocationSettings, settings: Settings) -> Store:
    if location.backend == "s3":
        return S3Store(
            location.name,
            location.s3,
            settings.effective_spool_dir,
            settings.max_size,
            storage_class=location.storage_class,
        )
    root = location.path or settings.data_dir / "files" / location.name
    kind = ColdFilesystemStore if location.kind == COLD else FilesystemStore
    return kind(location.name, root, fsync=settings.fsync)


def open_verifier(settings: Settings, issuer: LocalIssuer, stack: AsyncExitStack) -> Verifier:
    """OIDC tokens when an issuer is configured, else the local issuer's (those it accepted
    remembered until they expire: its key cannot change while it runs, whereas a provider's
    withdrawn key must refuse its tokens at once); then the role rule."""
    verify: Verifier = remembering(issuer.verify)
    if settings.oidc_issuer:
        http = provider_client()
        stack.push_async_callback(http.aclose)
        verify = OIDCVerifier.from_settings(settings, http).verify
    if settings.user_role:
        verify = require_role(verify, settings.user_role, settings.admin_role)
    return verify


async def open_context(settings: Settings, stack: AsyncExitStack) -> Context:
    """Connect everything (closing it through ``stack``) and bring the schema up to date."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.effective_spool_dir.mkdir(parents=True, exist_ok=True)
    db = await database.connect(settings.effective_database_url)
    stack.push_async_callback(db.disconnect)
    await migrate(db)

    stores: dict[str, Store] = {}
    for location in (*settings.locations, settings.cache):
        store = build_store(location, settings)
        await store.start()
        stack.push_async_callback(store.close)
        stores[location.name] = store

    locker: Locker
    if settings.redis_url:
        locker = RedisLocker(settings.redis_url, ttl=settings.lock_ttl_seconds)
    else:
        locker = MemoryLocker()
    await locker.start()
    stack.push_async_callback(locker.close)

    meter: Meter = RedisMeter(settings.redis_url) if settings.redis_url else MemoryMeter()
    stack.push_async_callback(meter.close)

    issuer = LocalIssuer.from_file(
        settings.effective_issuer_key_file, settings.token_leeway_seconds
    )
    context = Context(
        settings=settings,
        db=db,
        stores=stores,
        locker=locker,
        issuer=issuer,
        verify=open_verifier(settings, issuer, stack),
        meter=meter,
    )
    stack.callback(context.workers.close)  # after the tasks below have ended
    context.tasks = await stack.enter_async_context(anyio.create_task_group())
    stack.callback(context.tasks.cancel_scope.cancel)
    return context
