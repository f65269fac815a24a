"""planner.index_scans: the planner settings hold inside the block and nowhere else."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from eventlog.outbox.planner import INDEX_SCAN_SETTINGS, index_scans

pytestmark = pytest.mark.django_db(transaction=True)


def settings_now() -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(f"current_setting('{name}')" for name in INDEX_SCAN_SETTINGS))
        return dict(zip(INDEX_SCAN_SETTINGS, cursor.fetchone(), strict=True))


def test_statements_inside_plan_with_the_settings_and_the_connection_keeps_its_own_after() -> None:
    before = settings_now()
    with index_scans() as cursor:
        assert settings_now() == INDEX_SCAN_SETTINGS
        cursor.execute("EXPLAIN SELECT * FROM eventlog_outbox_event WHERE failed_at IS NOT NULL")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "outbox_failed_idx" in plan
    assert "Seq Scan" not in plan
    assert settings_now() == before


def test_inside_a_callers_transaction_the_callers_settings_are_put_back() -> None:
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_sort = on")
            cursor.execute("SET LOCAL jit = on")
            cursor.execute("SHOW DateStyle")
            date_style = cursor.fetchone()[0]
        with index_scans({"DateStyle": "SQL, DMY"}) as cursor:
            assert settings_now() == INDEX_SCAN_SETTINGS
            cursor.execute("SHOW DateStyle")
            assert cursor.fetchone()[0] == "SQL, DMY"
        assert settings_now()["enable_sort"] == "on"
        assert settings_now()["jit"] == "on"
        with connection.cursor() as cursor:
            cursor.execute("SHOW DateStyle")
            assert cursor.fetchone()[0] == date_style


def test_an_error_inside_rolls_the_settings_back_with_the_savepoint() -> None:
    with transaction.atomic():
        before = settings_now()
        with pytest.raises(ZeroDivisionError), index_scans():
            raise ZeroDivisionError
        assert settings_now() == before
