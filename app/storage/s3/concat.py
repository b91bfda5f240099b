"""Plan the multipart parts that join finished objects into one (tus concatenation).

S3 copies a part server-side (UploadPartCopy) from one range of one object, but every part but
the last must hold at least ``min_part`` bytes and no part more than ``max_part``. Sources big
enough are copied, split into ranges when larger than ``max_part``; runs of small sources are
joined with just enough bytes of their neighbours into "assembled" parts, whose bytes the store
downloads and uploads again. The plan keeps those re-sent bytes few: each assembled part starts
with a whole small source and stays under ``2 * min_part``.

Pure code: no I/O, so it is tested on its own.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from app.storage.base import Source

MAX_PARTS = 10_000


@dataclass(frozen=True)
class Piece:
    """Bytes ``[start, end)`` of the object ``key``."""

    key: str
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class PlannedPart:
    """One part of the result, made of ``pieces`` back to back."""

    pieces: tuple[Piece, ...]

    @property
    def size(self) -> int:
        return sum(piece.size for piece in self.pieces)

    @property
    def copy(self) -> bool:
        """True when S3 can copy the part server-side: it is one range of one object."""
        return len(self.pieces) == 1


def plan_parts(sources: Sequence[Source], min_part: int, max_part: int) -> list[PlannedPart]:
    """The parts, in order, whose bytes are the sources' bytes back to back.

    Every part but the last has ``min_part`` to ``max_part`` bytes; empty sources are skipped;
    no sources (or only empty ones) give no parts. Raises ValueError when the sizes are
    inconsistent or the result would need more than S3's 10,000 parts.
    """
    if not 0 < 2 * min_part <= max_part:
        raise ValueError("max_part must be at least twice min_part, and min_part positive")
    parts: list[PlannedPart] = []
    pending: list[Piece] = []  # an assembled part being filled, always under min_part bytes
    for source in sources:
        if source.size < 0:
            raise ValueError(f"source {source.key!r} has a negative size")
        if source.size == 0:
            continue
        start = 0
        if pending:
            held = sum(piece.size for piece in pending)
            need = min_part - held
            if source.size - need < min_part:
                # Too little would remain to stand as a part: take the whole source in.
                # held + size < 2 * min_part <= max_part, so the part stays within bounds.
                pending.append(Piece(source.key, 0, source.size))
                if held + source.size >= min_part:
                    parts.append(PlannedPart(tuple(pending)))
                    pending = []
                continue
            pending.append(Piece(source.key, 0, need))
            parts.append(PlannedPart(tuple(pending)))
            pending = []
            start = need
        if source.size - start >= min_part:
            parts.extend(PlannedPart((piece,)) for piece in _split(source, start, max_part))
        elif source.size > start:
            pending.append(Piece(source.key, start, source.size))
    if pending:
        parts.append(PlannedPart(tuple(pending)))
    if len(parts) > MAX_PARTS:
        raise ValueError(f"concatenation would need {len(parts)} parts, S3 allows {MAX_PARTS}")
    return parts


def _split(source: Source, start: int, max_part: int) -> Iterator[Piece]:
    """``[start, size)`` of ``source`` in the fewest near-equal ranges of at most ``max_part``.

    With k = ceil(n / max_part) ranges, each holds more than (k-1)/k of ``max_part`` when k > 1,
    so at least half of it: never under ``min_part``.
    """
    length = source.size - start
    count = -(-length // max_part)
    for index in range(count):
        yield Piece(
            source.key,
            start + length * index // count,
            start + length * (index + 1) // count,
        )
