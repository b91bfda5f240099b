"""Compiled SQL, kept between calls: ``databases`` compiles every statement anew.

Compiling a statement costs SQLAlchemy 0.3 ms of the event loop, more than SQLite takes to run
it; the hot path (``uploads.get`` and ``advance`` per PATCH and HEAD, the quota checks per
creation) spent a quarter of the loop there (bench/RESULTS.md). SQLAlchemy's own answer is its
cache key: the shape of a statement without its values. A statement of a shape seen before
reuses that compilation, and only its values are taken from the new statement — exactly what
SQLAlchemy's ``Connection`` does with its compiled cache, which ``databases`` bypasses. What a
backend makes of a compilation (its SQL string, the order of its arguments, the metadata of its
rows: stock ``databases`` remakes them per query, a tenth of the event loop at 400 uploads) is
kept with it.

Statements whose SQL depends on their values (``IN`` lists, literal renders), that SQLAlchemy
cannot key, or whose values cannot be carried over are compiled as before.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.cache_key import CacheKey
from sqlalchemy.sql.compiler import Compiled, SQLCompiler
from sqlalchemy.sql.ddl import DDLElement

CAPACITY = 1000  # shapes; the gateway has about a hundred
S = TypeVar("S")


class Compilations(Generic[S]):
    """One dialect's compiled statements, by shape; the least recently used go first. Each is
    kept with what ``derive`` makes of its compilation: the backend's SQL string, argument order
    and result columns, made once per shape instead of once per query."""

    def __init__(
        self, dialect: Dialect, derive: Callable[[SQLCompiler], S], capacity: int = CAPACITY
    ) -> None:
        self._dialect = dialect
        self._derive = derive
        self._capacity = capacity
        self._shapes: OrderedDict[Any, tuple[SQLCompiler, S] | None] = OrderedDict()

    def find(self, query: ClauseElement) -> tuple[S, dict[str, Any]] | None:
        """The shape of ``query`` and its values; None for a statement compiled each time."""
        if isinstance(query, DDLElement):
            return None
        key = query._generate_cache_key()
        if key is None or any(bind.expanding or bind.literal_execute for bind in key.bindparams):
            return None
        if key.key in self._shapes:
            shape = self._shapes[key.key]
            self._shapes.move_to_end(key.key)
        else:
            shape = self._shape(query, key)
            self._shapes[key.key] = shape
            if len(self._shapes) > self._capacity:
                self._shapes.popitem(last=False)
        if shape is None:
            return None
        compiled, derived = shape
        return derived, _values(compiled, key)

    def _shape(self, query: ClauseElement, key: CacheKey) -> tuple[SQLCompiler, S] | None:
        """The compilation of a new shape; None if values cannot be carried over to it (as
        for a statement given its values by ``.params()``): checked once, on this one."""
        compiled = cast(SQLCompiler, query.compile(dialect=self._dialect, cache_key=key))
        try:
            if _values(compiled, key) == compiled.construct_params():
                return compiled, self._derive(compiled)
        except SQLAlchemyError:
            pass
        return None


def _values(compiled: Compiled, key: CacheKey) -> dict[str, Any]:
    """The values of the statement that ``key`` was taken from, by the compilation's names."""
    return dict(compiled.construct_params(extracted_parameters=key.bindparams) or {})
