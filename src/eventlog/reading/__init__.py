"""The read side: events back out of ClickHouse, as pages, counts and exports.

    filters.py   a read's parameters parsed and checked (times, types, environments, context paths)
    cursor.py    the opaque, signed position of a page: keyset paging, never OFFSET
    store.py     ClickHouse for reads: read-only, with time, memory and result limits
    events.py    pages of events, one event, and an export streamed chunk by chunk
    counts.py    counts per time bucket in a time zone, every bucket present
    browse.py    newest first, older and newer a page at a time (the events page)

Every function here takes what it reads from as an argument; the HTTP views (eventlog/web/read_api.py,
eventlog/web/events_page.py) and `manage.py events` are shells around them.
"""
