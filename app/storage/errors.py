"""Errors a store may raise. Backends map their foreign errors to these at their boundary."""

from __future__ import annotations


class StorageError(Exception):
    """The store failed; the operation may succeed if retried later."""


class StorageUnavailable(StorageError):
    """The store cannot be reached (network, credentials, service down)."""


class ObjectNotFound(StorageError):
    """The object or upload named does not exist in the store."""


class StorageFull(StorageError):
    """No space left where the store writes (disk or spool)."""


class ObjectArchived(StorageError):
    """The object is archived (nearline): it must be restored before it can be read."""
