"""The store interface: what the tus layer may ask of the place where bytes live.

A store knows nothing of HTTP or tus. It keeps the bytes of uploads in progress and of finished
objects, and it answers one question the database cannot answer alone after a crash: how many
bytes of an upload are durably committed.

Life of an upload in a store::

    stored = await store.create(upload_id, length)      # caller keeps `stored` (the database)
    async with store.open(stored) as writer:            # one writer at a time (the caller locks)
        writer.offset                                   # bytes committed so far, per the store
        await writer.write(chunks)                      # staged, not yet visible
        await writer.commit()                           # durable; offset moves  -- or --
        await writer.finish()                           # all bytes there: becomes one object
    # leaving the block without commit/finish drops what was staged

Commit protocol (what makes crashes safe): ``commit`` makes the staged bytes durable *before* it
moves the store's own commit record, and the caller writes the new offset to the database only
after ``commit`` returned. So after a crash the store is never behind the database; it may be
ahead (crash between the two), and ``offset``/``writer.offset`` tell the truth to adopt. Nothing
a store does while replacing its state removes the old state before the new one is durable.

Capabilities beyond the core are separate small protocols (``Concatenator`` …); the tus layer
checks them with ``isinstance`` and advertises the matching extensions.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol, runtime_checkable


@dataclass(frozen=True)
class StoredUpload:
    """How a store finds an upload again. The caller persists it; the store never does.

    ``key`` names the finished object; ``state`` is private to the store (for S3 the multipart
    upload id and part size) and must be JSON-serialisable.
    """

    key: str
    length: int | None
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Source:
    """A finished object and its size, as input to a concatenation."""

    key: str
    size: int


class Writer(Protocol):
    """Appends to one upload. Not safe for concurrent use; the caller holds the upload's lock."""

    @property
    def offset(self) -> int:
        """Bytes committed, as found when the writer was opened (after ``commit``: the new)."""

    @property
    def finished(self) -> bool:
        """True once the upload is a whole object (possibly finished by an earlier writer)."""

    @property
    def staged(self) -> int:
        """Bytes written since the last commit."""

    async def write(self, chunks: Sequence[bytes]) -> None:
        """Stage bytes after ``offset + staged``. May wait (back-pressure), never buffers whole."""

    async def commit(self) -> int:
        """Make staged bytes durable and part of the upload; returns the new offset."""

    async def finish(self) -> None:
        """Commit what is staged and turn the upload into the object ``key``. Idempotent."""


@runtime_checkable
class BlockingWriter(Protocol):
    """A writer whose write is one blocking call into memory the kernel holds (the
    filesystem's page cache): the caller runs it with its own work on the same bytes (hashing)
    in one thread hop, not two, or, while few PATCHes are receiving, on the event loop itself,
    where a batch costs less than a hop's wake-ups (bench/RESULTS.md)."""

    def write_blocking(self, chunks: Sequence[bytes]) -> None:
        """``Writer.write``, blocking: the caller chooses the thread."""


@runtime_checkable
class Store(Protocol):
    """The core every store implements."""

    name: str

    async def start(self) -> None:
        """Connect and prepare (directories, clients). Called once before any other call."""

    async def close(self) -> None:
        """Release connections. Called once at shutdown."""

    async def check(self) -> None:
        """Raise ``StorageError`` if the store cannot be used now (``/readyz``)."""

    async def create(self, upload_id: str, length: int | None) -> StoredUpload:
        """Prepare an empty upload. ``length`` is None while the client defers it."""

    def open(self, upload: StoredUpload) -> AbstractAsyncContextManager[Writer]:
        """Open the upload for writing; on exit, anything staged and not committed is dropped."""

    async def offset(self, upload: StoredUpload) -> int:
        """Bytes committed, per the store's own record (cheap: one metadata read)."""

    async def abort(self, upload: StoredUpload) -> None:
        """Free everything an unfinished upload holds (parts, tails, spool). Idempotent."""

    def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncGenerator[bytes, None]:
        """Stream bytes ``[start, end)`` of a finished object, in bounded chunks.

        A reader that stops early closes the generator (``aclose``), which releases the file or
        connection at once.
        """

    async def delete(self, key: str) -> None:
        """Remove a finished object. Idempotent."""


@runtime_checkable
class Concatenator(Protocol):
    """A store that can join finished objects into a new upload without the caller's help."""

    async def concatenate(self, upload: StoredUpload, sources: Sequence[Source]) -> None:
        """Make ``upload`` the finished object holding ``sources`` back to back."""


@dataclass(frozen=True)
class ExpiryPolicy:
    """What a store's own expiry rules (a bucket's lifecycle) must keep to."""

    unfinished_days: int  # abort uploads left unfinished this long
    # Delete finished objects this long after they were written; None: never (a location that
    # forbids physical deletion).
    retention_days: int | None


@runtime_checkable
class Provisioner(Protocol):
    """A store that creates its container and expiry rules (``python -m app storage init``)."""

    async def provision(self, policy: ExpiryPolicy) -> None:
        """Create what is missing and (re)write the expiry rules. Idempotent."""


@runtime_checkable
class Holder(Protocol):
    """A store with expiry rules of its own, which must spare objects on legal hold."""

    async def hold(self, key: str, held: bool) -> None:
        """Exempt ``key`` from the store's expiry rules, or subject it to them again."""


@runtime_checkable
class Restorer(Protocol):
    """A nearline store: its objects must be restored (for a while) before they can be read,
    as S3's archive classes do. ``read`` raises ``ObjectArchived`` on one that is not."""

    async def restore(self, key: str, days: int) -> None:
        """Start making ``key`` readable for ``days`` days. Idempotent; may return at once."""

    async def restored(self, key: str) -> bool:
        """Whether ``key`` can be read now."""


@runtime_checkable
class LocalFiles(Protocol):
    """A store whose finished objects are files on this machine: a server that sends files
    itself (``sendfile``: the kernel moves the bytes from the page cache to the socket) is
    handed the file instead of its bytes."""

    async def open_file(self, key: str) -> BinaryIO:
        """The object's file, open for reading: ``ObjectNotFound`` if it is missing,
        ``ObjectArchived`` if it must be restored first."""


@dataclass(frozen=True)
class Unfinished:
    """An unfinished upload as its store lists it, with the upload id it was created for."""

    upload_id: str
    upload: StoredUpload  # ``length`` unknown (None); ``state`` what ``abort`` needs


@runtime_checkable
class Lister(Protocol):
    """A store that can list the unfinished uploads it holds (S3 multipart uploads), so that
    the sweeper frees those whose row ended without learning of them: a process killed between
    creating one and recording it in its row leaves one that nothing else would ever find."""

    def unfinished(self) -> AsyncIterator[Unfinished]:
        """Every unfinished upload, in no particular order."""
