"""The outbox: events written into PostgreSQL in the producer's own transaction.

events   the producer API (`emit_event`, `emit_events`) and the check of one event
planner  the statements on the outbox, planned by the index whatever the statistics say
"""
