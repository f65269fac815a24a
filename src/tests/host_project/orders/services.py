"""The shop's own business change and its event, in one transaction."""

from django.db import transaction

from eventlog.outbox.events import NewEvent, emit_event
from orders.models import Order


def place_order(item: str, fail_after_emit: bool = False) -> Order:
    with transaction.atomic():
        order = Order.objects.create(item=item)
        emit_event(NewEvent("order.placed", {"order_id": order.pk, "item": item}))
        if fail_after_emit:
            raise RuntimeError("payment declined")
    return order
