"""Migration files: named NNNN_name.sql, applied by version, never two with one number."""

from __future__ import annotations

import pytest

from connectors.postgres.migrate import ordered, packaged, parse_file_name


def test_file_name_gives_version_and_name() -> None:
    assert parse_file_name("0012_add_carrier_index.sql") == (12, "add_carrier_index")


@pytest.mark.parametrize("name", ["1_init.sql", "0001-init.sql", "0001_Init.sql", "0001_init.SQL", "0001_.sql"])
def test_badly_named_files_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="NNNN_lower_snake"):
        parse_file_name(name)


def test_migrations_run_by_version_not_by_listing_order() -> None:
    migrations = ordered({"0010_later.sql": "-- b", "0002_second.sql": "-- a", "0001_init.sql": "-- 0"})
    assert [m.label for m in migrations] == ["0001_init", "0002_second", "0010_later"]


def test_two_files_with_one_version_are_refused() -> None:
    with pytest.raises(ValueError, match="two migrations have version 2"):
        ordered({"0002_a.sql": "", "0002_b.sql": ""})


def test_the_packaged_migrations_start_with_the_initial_schema() -> None:
    migrations = packaged()
    assert migrations[0].label == "0001_init"
    assert "CREATE TABLE shipments" in migrations[0].sql
