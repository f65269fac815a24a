"""Running the relay on Celery beat's schedule, across every worker process.

beat          the beat entries a project's schedule needs
coordination  what all relays share in Redis: slots, leases, the events-per-second budget
runs          a scheduled relay run: the policy around `relay_outbox` that needs that shared state
"""
