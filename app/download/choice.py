"""Which copy of a file to read: the order REGARDS' downloader uses.

Online copies only, hot locations before cold ones, then by the location's priority (0 first);
a hot copy is read directly, a cold one through a restore into the cache (``files/restore.py``);
ties go by location name so that every instance makes the same choice. A copy in a location
the settings no longer name cannot be read and is left out.
"""

from __future__ import annotations

from collections.abc import Iterable

from app.db.downloads import StoredCopy
from app.db.files import ONLINE
from app.settings import HOT, LocationSettings, Settings


def readable_copies(copies: Iterable[StoredCopy], settings: Settings) -> list[StoredCopy]:
    """The copies in known locations, best first."""
    locations = {location.name: location for location in settings.locations}
    online = [copy for copy in copies if copy.state == ONLINE and copy.location in locations]
    return sorted(online, key=lambda copy: _rank(locations[copy.location]))


def hot_copies(copies: Iterable[StoredCopy], settings: Settings) -> list[StoredCopy]:
    """The copies that can be read at once, best first."""
    return [copy for copy in readable_copies(copies, settings) if _kind(copy, settings) == HOT]


def cold_copies(copies: Iterable[StoredCopy], settings: Settings) -> list[StoredCopy]:
    """The copies that are read through a restore into the cache, best first."""
    return [copy for copy in readable_copies(copies, settings) if _kind(copy, settings) != HOT]


def _kind(copy: StoredCopy, settings: Settings) -> str:
    return settings.location(copy.location).kind


def _rank(location: LocationSettings) -> tuple[bool, int, str]:
    return (location.kind != HOT, location.priority, location.name)
