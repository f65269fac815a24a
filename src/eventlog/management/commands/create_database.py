from __future__ import annotations

from typing import Any

import psycopg
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from psycopg import sql


class Command(BaseCommand):
    help = "Create the PostgreSQL database of DATABASES['default'] if it does not exist yet."

    def handle(self, *args: Any, **options: Any) -> None:
        db = {key: str(value) for key, value in settings.DATABASES["default"].items() if value is not None}
        name = db["NAME"]
        try:
            with psycopg.connect(
                dbname="postgres",
                host=db.get("HOST", ""),
                port=db.get("PORT") or None,
                user=db.get("USER", ""),
                password=db.get("PASSWORD", ""),
                autocommit=True,
            ) as conn:
                exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
                if exists is None:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                    self.stdout.write(f"created database {name!r}")
        except psycopg.Error as exc:
            raise CommandError(f"cannot create database {name!r}: {exc}") from exc
