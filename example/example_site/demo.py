"""Demo data for the example site: made-up devices and places for alice.

Every address is in a documentation range (RFC 5737, RFC 3849) and the GeoIP
database that places them is written here, from the table below: nothing
names a real network or needs a MaxMind download.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GEOIP_FILE = Path(__file__).resolve().parent.parent / "demo-geoip" / "Demo-City.mmdb"
# Demo rows are told apart by their handle, in the admin as in this code.
HANDLE_PREFIX = "demo-"


@dataclass(frozen=True)
class Place:
    network: str
    city: str
    country: str
    iso_code: str
    continent: str


@dataclass(frozen=True)
class DemoDevice:
    user_agent: str
    # Client hints as Chromium sends them (request.META names); empty: none.
    hints: dict[str, str]
    ip: str
    place: Place
    signed_in_ago: datetime.timedelta
    active_ago: datetime.timedelta


ZWOLLE = Place("203.0.113.0/24", "Zwolle", "Netherlands", "NL", "EU")
BERLIN = Place("198.51.100.0/24", "Berlin", "Germany", "DE", "EU")
TOKYO = Place("192.0.2.0/24", "Tokyo", "Japan", "JP", "AS")
SAO_PAULO = Place("2001:db8:1::/48", "São Paulo", "Brazil", "BR", "SA")
TORONTO = Place("2001:db8:2::/48", "Toronto", "Canada", "CA", "NA")
PLACES = (ZWOLLE, BERLIN, TOKYO, SAO_PAULO, TORONTO)

_CONTINENTS = {
    "EU": "Europe",
    "AS": "Asia",
    "SA": "South America",
    "NA": "North America",
}


def _chromium_hints(brand: str, platform: str, version: str, *, model: str = "") -> dict[str, str]:
    mobile = "?1" if model else "?0"
    return {
        "HTTP_SEC_CH_UA": f'"Chromium";v="131", "{brand}";v="131", "Not_A Brand";v="24"',
        "HTTP_SEC_CH_UA_FULL_VERSION_LIST": (
            f'"Chromium";v="131.0.6778.86", "{brand}";v="131.0.6778.86", "Not_A Brand";v="24.0.0.0"'
        ),
        "HTTP_SEC_CH_UA_MOBILE": mobile,
        "HTTP_SEC_CH_UA_PLATFORM": f'"{platform}"',
        "HTTP_SEC_CH_UA_PLATFORM_VERSION": f'"{version}"',
        "HTTP_SEC_CH_UA_MODEL": f'"{model}"',
    }


_MINUTE = datetime.timedelta(minutes=1)
_HOUR = datetime.timedelta(hours=1)
_DAY = datetime.timedelta(days=1)

DEVICES = (
    DemoDevice(
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        _chromium_hints("Google Chrome", "Windows", "15.0.0"),
        "203.0.113.24",
        ZWOLLE,
        signed_in_ago=12 * _DAY,
        active_ago=4 * _MINUTE,
    ),
    DemoDevice(
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
        _chromium_hints("Google Chrome", "Android", "15.0.0", model="Pixel 8"),
        "2001:db8:1::24",
        SAO_PAULO,
        signed_in_ago=30 * _DAY,
        active_ago=2 * _HOUR,
    ),
    DemoDevice(
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.70",
        _chromium_hints("Microsoft Edge", "macOS", "15.1.0"),
        "198.51.100.24",
        BERLIN,
        signed_in_ago=3 * _DAY,
        active_ago=1 * _DAY,
    ),
    DemoDevice(
        "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        {},
        "192.0.2.24",
        TOKYO,
        signed_in_ago=60 * _DAY,
        active_ago=9 * _DAY,
    ),
    DemoDevice(
        "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        {},
        "2001:db8:2::24",
        TORONTO,
        signed_in_ago=90 * _DAY,
        active_ago=20 * _DAY,
    ),
)


def write_geoip_database(path: Path = GEOIP_FILE) -> Path:
    """Write the demo City database to ``path`` (needs mmdb-writer, a dev dependency)."""
    from mmdb_writer import MmdbU32, MMDBWriter
    from netaddr import IPSet

    writer = MMDBWriter(
        ip_version=6,
        ipv4_compatible=True,
        database_type="GeoLite2-City",
        languages=["en"],
        description="django-user-sessions example: made-up places for documentation addresses",
    )
    for number, place in enumerate(PLACES, start=1):
        country: dict[str, Any] = {
            "geoname_id": MmdbU32(number),
            "iso_code": place.iso_code,
            "names": {"en": place.country},
        }
        writer.insert_network(
            IPSet([place.network]),
            {
                "city": {"geoname_id": MmdbU32(100 + number), "names": {"en": place.city}},
                "continent": {
                    "code": place.continent,
                    "names": {"en": _CONTINENTS[place.continent]},
                },
                "country": country,
                "registered_country": country,
            },
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    # A running server reads the file through mmap: a new file is moved into
    # place, never the old one overwritten under it.
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    writer.to_db_file(str(partial))
    os.replace(partial, path)
    return path


def geoip_path() -> Path:
    """Where the example's settings read the database (EXAMPLE_GEOIP_PATH moves it)."""
    return Path(os.environ.get("EXAMPLE_GEOIP_PATH") or GEOIP_FILE)


def ensure_geoip_database() -> Path | None:
    """The demo database, written first if missing; ``None`` without mmdb-writer."""
    path = geoip_path()
    if path.exists():
        return path
    try:
        return write_geoip_database(path)
    except ImportError:
        return None
