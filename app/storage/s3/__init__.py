"""The S3 store (MinIO, AWS, any S3): see ``store.py`` for the object layout and permissions."""

from __future__ import annotations

from app.storage.s3.store import S3Store

__all__ = ["S3Store"]
