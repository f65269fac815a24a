"""The HTTP edge: thin views over the core, and the parsing of what a request sends.

views        ingest, stats, metrics, health, the status page and the OpenAPI document
ingest       POST /api/v1/events without a web framework (the Django view and the fast path share it)
validation   the JSON body parsed into checked events
read_api     GET /api/v1/events and its counts and export
events_page  /events/, for staff
openapi      the OpenAPI 3.1 document
"""
