"""The concatenation planner: bounds of every part, exact coverage, few bytes re-sent."""

from __future__ import annotations

import random

import pytest

from app.storage.base import Source
from app.storage.s3.concat import MAX_PARTS, Piece, PlannedPart, plan_parts

MIN = 5
MAX = 12


def sources_of(sizes: list[int]) -> list[Source]:
    return [Source(f"s{index}", size) for index, size in enumerate(sizes)]


def coalesced(pieces: list[Piece]) -> list[Piece]:
    """``pieces`` with each run of adjacent ranges of one object merged into one range."""
    merged: list[Piece] = []
    for piece in pieces:
        if merged and merged[-1].key == piece.key and merged[-1].end == piece.start:
            merged[-1] = Piece(piece.key, merged[-1].start, piece.end)
        else:
            merged.append(piece)
    return merged


def check_plan(sizes: list[int], parts: list[PlannedPart], min_part: int, max_part: int) -> None:
    """Every property a plan must have, whatever the sizes."""
    pieces = [piece for part in parts for piece in part.pieces]
    # The pieces are the sources' bytes, in order, each byte exactly once.
    assert all(piece.size > 0 for piece in pieces)
    assert coalesced(pieces) == [Piece(s.key, 0, s.size) for s in sources_of(sizes) if s.size]
    # Bounds: every part but the last within [min, max]; the last not empty, within max.
    for part in parts[:-1]:
        assert min_part <= part.size <= max_part
    if parts:
        assert 0 < parts[-1].size <= max_part
    # Assembled bytes (downloaded and sent again) stay few.
    assembled = sum(part.size for part in parts if not part.copy)
    small = sum(1 for size in sizes if 0 < size < min_part)
    assert assembled <= 2 * min_part * small


@pytest.mark.parametrize(
    "sizes",
    [
        [],
        [0, 0],
        [3],
        [5],
        [12],
        [13],
        [100],
        [1, 1, 1],
        [4, 4, 4, 4],
        [1, 100, 1],
        [4, 5, 4],
        [5, 1, 5, 1, 5],
        [24, 1, 24],
        [2, 7, 2, 7],
        [11, 3, 9],
    ],
)
def test_plans_for_chosen_sizes(sizes: list[int]) -> None:
    check_plan(sizes, plan_parts(sources_of(sizes), MIN, MAX), MIN, MAX)


def test_plans_for_random_sizes() -> None:
    rng = random.Random(20261122)
    for _ in range(2000):
        count = rng.randint(0, 8)
        sizes = [rng.choice([0, 1, 2, 4, 5, 6, 9, 11, 12, 13, 25, 40]) for _ in range(count)]
        min_part = rng.randint(1, 6)
        max_part = rng.randint(2 * min_part, 3 * min_part + 4)
        check_plan(sizes, plan_parts(sources_of(sizes), min_part, max_part), min_part, max_part)


def test_sources_big_enough_are_all_copied() -> None:
    parts = plan_parts(sources_of([5, 12, 7]), MIN, MAX)
    assert [part.pieces for part in parts] == [
        (Piece("s0", 0, 5),),
        (Piece("s1", 0, 12),),
        (Piece("s2", 0, 7),),
    ]


def test_a_source_over_the_maximum_is_split_into_near_equal_ranges() -> None:
    parts = plan_parts(sources_of([25]), MIN, MAX)
    assert [part.pieces for part in parts] == [
        (Piece("s0", 0, 8),),
        (Piece("s0", 8, 16),),
        (Piece("s0", 16, 25),),
    ]


def test_a_small_source_borrows_just_enough_from_the_next() -> None:
    parts = plan_parts(sources_of([2, 12]), MIN, MAX)
    assert [part.pieces for part in parts] == [
        (Piece("s0", 0, 2), Piece("s1", 0, 3)),
        (Piece("s1", 3, 12),),
    ]


def test_a_small_source_takes_a_whole_neighbour_that_could_not_stand_alone() -> None:
    parts = plan_parts(sources_of([2, 6]), MIN, MAX)
    assert [part.pieces for part in parts] == [(Piece("s0", 0, 2), Piece("s1", 0, 6))]


def test_a_small_last_source_is_copied_as_the_last_part() -> None:
    parts = plan_parts(sources_of([7, 2]), MIN, MAX)
    assert [part.copy for part in parts] == [True, True]


def test_real_s3_bounds() -> None:
    mib = 1024 * 1024
    sizes = [1, 5 * mib, 300, 6 * 1024 * mib, 2 * mib, 2 * mib, 2 * mib, 7]
    parts = plan_parts(sources_of(sizes), 5 * mib, 5 * 1024 * mib)
    check_plan(sizes, parts, 5 * mib, 5 * 1024 * mib)
    assert sum(part.size for part in parts if not part.copy) < 4 * 5 * mib


def test_inconsistent_bounds_or_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        plan_parts(sources_of([1]), 5, 9)
    with pytest.raises(ValueError, match="negative"):
        plan_parts(sources_of([-1]), MIN, MAX)


def test_more_than_10000_parts_are_refused() -> None:
    assert len(plan_parts(sources_of([MIN] * MAX_PARTS), MIN, MAX)) == MAX_PARTS
    with pytest.raises(ValueError, match="10000"):
        plan_parts(sources_of([MIN] * (MAX_PARTS + 1)), MIN, MAX)
