"""The spec's example domain: creating a user records `user_created` in the same transaction."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from eventlog.outbox.events import NewEvent, emit_event


@dataclass(frozen=True)
class CreateUser:
    """Create a user and emit `user_created`; both are committed together or not at all."""

    email: str
    first_name: str
    last_name: str

    def __call__(self) -> AbstractBaseUser:
        with transaction.atomic():
            user = get_user_model().objects.create_user(
                username=self.email, email=self.email, first_name=self.first_name, last_name=self.last_name
            )
            emit_event(
                NewEvent(
                    event_type="user_created",
                    event_context={
                        "email": self.email,
                        "first_name": self.first_name,
                        "last_name": self.last_name,
                    },
                )
            )
        return user
