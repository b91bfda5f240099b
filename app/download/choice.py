"""Which copy of a file to read: the order REGARDS' downloader uses.

Online copies only, hot locations before cold ones, then by the location's priority (0 first);
ties go by location name so that every instance makes the same choice. A copy in a location
the settings no longer name cannot be read and is left out.
"""

from __future__ import annotations

from collections.abc import Iterable

from app.db.downloads import StoredCopy
from app.db.files import ONLINE
from app.settings import HOT, LocationSettings, Settings


def readable_copies(copies: Iterable[StoredCopy], settings: Settings) -> list[StoredCopy]:
    """The copies that can be read now, best first."""
    locations = {location.name: location for location in settings.locations}
    online = [copy for copy in copies if copy.state == ONLINE and copy.location in locations]
    return sorted(online, key=lambda copy: _rank(locations[copy.location]))


def _rank(location: LocationSettings) -> tuple[bool, int, str]:
    return (location.kind != HOT, location.priority, location.name)
