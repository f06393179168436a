"""Small GeoIP databases for tests, written with mmdb-writer in MaxMind's layout.

Every network is a documentation range, so no test ever names a real address.
``tests/conftest.py`` imports the fixtures below with ``from tests.geoip import *``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mmdb_writer import MmdbF64, MmdbU32, MMDBWriter
from netaddr import IPSet
from pytest_django.fixtures import Settings

# Only the fixtures: what conftest.py star-imports. Tests import the constants by name.
__all__ = ["geoip_city_db", "geoip_country_db", "geoip_directory", "geoip_settings"]

CITY_DB_NAME = "Test-City.mmdb"
COUNTRY_DB_NAME = "Test-Country.mmdb"

# An address in each listed network, and one in a documentation range left out.
ZWOLLE_IP = "203.0.113.7"
GERMANY_IP = "198.51.100.7"  # the City database knows only the country
SAO_PAULO_IP = "2001:db8:1::7"
COUNTRY_ONLY_IP = "2001:db8:3::7"  # in the Country database only
UNLISTED_IP = "192.0.2.1"

_NETHERLANDS = {
    "geoname_id": MmdbU32(2750405),
    "iso_code": "NL",
    "names": {"en": "Netherlands", "de": "Niederlande", "fr": "Pays-Bas", "pt-BR": "Holanda"},
}
_GERMANY = {
    "geoname_id": MmdbU32(2921044),
    "iso_code": "DE",
    "names": {"en": "Germany", "de": "Deutschland", "fr": "Allemagne", "pt-BR": "Alemanha"},
}
_BRAZIL = {
    "geoname_id": MmdbU32(3469034),
    "iso_code": "BR",
    "names": {"en": "Brazil", "de": "Brasilien", "fr": "Brésil", "pt-BR": "Brasil"},
}
_EUROPE = {"code": "EU", "geoname_id": MmdbU32(6255148), "names": {"en": "Europe", "de": "Europa"}}
_SOUTH_AMERICA = {
    "code": "SA",
    "geoname_id": MmdbU32(6255150),
    "names": {"en": "South America", "de": "Südamerika"},
}

_COUNTRY_RECORDS: dict[str, dict[str, Any]] = {
    "203.0.113.0/24": {
        "continent": _EUROPE,
        "country": _NETHERLANDS,
        "registered_country": _NETHERLANDS,
    },
    "198.51.100.0/24": {"continent": _EUROPE, "country": _GERMANY, "registered_country": _GERMANY},
    "2001:db8:1::/48": {
        "continent": _SOUTH_AMERICA,
        "country": _BRAZIL,
        "registered_country": _BRAZIL,
    },
}

# Networks the Country database lists and the City one leaves out.
_COUNTRY_ONLY_RECORDS: dict[str, dict[str, Any]] = {
    "2001:db8:3::/48": {"continent": _EUROPE, "country": _GERMANY, "registered_country": _GERMANY},
}

_CITY_PARTS: dict[str, dict[str, Any]] = {
    "203.0.113.0/24": {
        "city": {
            "geoname_id": MmdbU32(2743477),
            "names": {"en": "Zwolle", "de": "Zwolle", "ja": "ズヴォレ"},
        },
        "location": {"latitude": MmdbF64(52.5125), "longitude": MmdbF64(6.0944)},
    },
    "2001:db8:1::/48": {
        "city": {
            "geoname_id": MmdbU32(3448439),
            "names": {"en": "São Paulo", "de": "São Paulo", "pt-BR": "São Paulo"},
        },
        "location": {"latitude": MmdbF64(-23.5475), "longitude": MmdbF64(-46.6361)},
    },
}


def _write(path: Path, database_type: str, records: dict[str, dict[str, Any]]) -> Path:
    writer = MMDBWriter(
        ip_version=6,
        ipv4_compatible=True,
        database_type=database_type,
        languages=["en", "de", "fr", "pt-BR"],
        description=f"django-user-sessions test {database_type}",
    )
    for network, record in records.items():
        writer.insert_network(IPSet([network]), record)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer.to_db_file(str(path))
    return path


def write_city_db(path: Path) -> Path:
    """A GeoLite2-City database; 198.51.100.0/24 has a country but no city."""
    records = {
        network: {**record, **_CITY_PARTS.get(network, {})}
        for network, record in _COUNTRY_RECORDS.items()
    }
    return _write(path, "GeoLite2-City", records)


def write_country_db(path: Path) -> Path:
    """A GeoLite2-Country database: the City one's networks and one more (COUNTRY_ONLY_IP)."""
    return _write(path, "GeoLite2-Country", {**_COUNTRY_RECORDS, **_COUNTRY_ONLY_RECORDS})


@pytest.fixture(scope="session")
def geoip_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding both databases, as a site's GEOIP_PATH would."""
    directory = tmp_path_factory.mktemp("geoip")
    write_city_db(directory / CITY_DB_NAME)
    write_country_db(directory / COUNTRY_DB_NAME)
    return directory


@pytest.fixture(scope="session")
def geoip_city_db(geoip_directory: Path) -> Path:
    return geoip_directory / CITY_DB_NAME


@pytest.fixture(scope="session")
def geoip_country_db(geoip_directory: Path) -> Path:
    return geoip_directory / COUNTRY_DB_NAME


@pytest.fixture
def geoip_settings(settings: Settings, geoip_directory: Path) -> Settings:
    """Point GEOIP_* at the test databases; the City one is used, as it is preferred."""
    settings.GEOIP_PATH = str(geoip_directory)
    settings.GEOIP_CITY = CITY_DB_NAME
    settings.GEOIP_COUNTRY = COUNTRY_DB_NAME
    return settings
