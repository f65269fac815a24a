"""ClickHouse access for writing (reads have their own client under limits: eventlog.reading.store).

event_log  connecting, the `event_log` schema, the writer of a batch, error translation
"""
