from __future__ import annotations

from typing import Any

import psycopg
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from psycopg import sql


class Command(BaseCommand):
    help = "Create the PostgreSQL database named in DATABASE_URL if it does not exist yet."

    def handle(self, *args: Any, **options: Any) -> None:
        db = settings.EVENTLOG.database
        try:
            with psycopg.connect(
                dbname="postgres",
                host=db.host,
                port=db.port,
                user=db.user,
                password=db.password,
                autocommit=True,
            ) as conn:
                exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db.name]).fetchone()
                if exists is None:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db.name)))
                    self.stdout.write(f"created database {db.name!r}")
        except psycopg.Error as exc:
            raise CommandError(f"cannot create database {db.name!r}: {exc}") from exc
