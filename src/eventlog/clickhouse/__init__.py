"""ClickHouse access for writing: connecting, the `event_log` schema, one batch's insert.
(Reads have their own client under limits: eventlog.reading.store.)
"""
