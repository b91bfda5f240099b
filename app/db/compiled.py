"""Compiled SQL, kept between calls: ``databases`` compiles every statement anew.

Compiling a statement costs SQLAlchemy 0.3 ms of the event loop, more than SQLite takes to run
it; the hot path (``uploads.get`` and ``advance`` per PATCH and HEAD, the quota checks per
creation) spent a quarter of the loop there (bench/RESULTS.md). SQLAlchemy's own answer is its
cache key: the shape of a statement without its values. A statement of a shape seen before
reuses that compilation, and only its values are taken from the new statement — exactly what
SQLAlchemy's ``Connection`` does with its compiled cache, which ``databases`` bypasses.

Statements whose SQL depends on their values (``IN`` lists, literal renders), that SQLAlchemy
cannot key, or whose values cannot be carried over are compiled as before.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.cache_key import CacheKey
from sqlalchemy.sql.compiler import Compiled
from sqlalchemy.sql.ddl import DDLElement

CAPACITY = 1000  # shapes; the gateway has about a hundred


class Compilations:
    """One dialect's compiled statements, by shape; the least recently used go first."""

    def __init__(self, dialect: Dialect, capacity: int = CAPACITY) -> None:
        self._dialect = dialect
        self._capacity = capacity
        self._compiled: OrderedDict[Any, Compiled | None] = OrderedDict()

    def prepare(self, query: ClauseElement) -> Any:
        """What to hand to a ``databases`` backend's ``_compile`` in place of ``query``."""
        if isinstance(query, DDLElement):
            return query
        key = query._generate_cache_key()
        if key is None or any(bind.expanding or bind.literal_execute for bind in key.bindparams):
            return query
        if key.key in self._compiled:
            compiled = self._compiled[key.key]
            self._compiled.move_to_end(key.key)
        else:
            compiled = self._compile(query, key)
            self._compiled[key.key] = compiled
            if len(self._compiled) > self._capacity:
                self._compiled.popitem(last=False)
        if compiled is None:
            return query
        return _Known(_Bound(compiled, key.bindparams))

    def _compile(self, query: ClauseElement, key: CacheKey) -> Compiled | None:
        """The compilation of a new shape; None if values cannot be carried over to it (as
        for a statement given its values by ``.params()``): checked once, on this one."""
        compiled = query.compile(dialect=self._dialect, cache_key=key)
        try:
            carried = _Bound(compiled, key.bindparams).construct_params()
            if carried == compiled.construct_params():
                return compiled
        except SQLAlchemyError:
            pass
        return None


class _Known:
    """A statement whose compilation is known: ``compile`` returns it, with this one's values."""

    def __init__(self, bound: _Bound) -> None:
        self._bound = bound

    def compile(self, **_: Any) -> _Bound:
        return self._bound


class _Bound:
    """A compiled statement seen through the values of another statement of the same shape."""

    def __init__(self, compiled: Compiled, extracted: Any) -> None:
        self._compiled = compiled
        self._extracted = extracted

    def __getattr__(self, name: str) -> Any:
        return getattr(self._compiled, name)

    @property
    def params(self) -> dict[str, Any]:
        return self.construct_params()

    def construct_params(self, **kwargs: Any) -> dict[str, Any]:
        params = self._compiled.construct_params(extracted_parameters=self._extracted, **kwargs)
        return dict(params or {})
