"""What the system reports of itself: the outbox's figures, readiness, the status page, the scrape.

stats             outbox figures from PostgreSQL (pending, delivered, lag, latencies)
health            readiness: can the pipeline take events and deliver them, and is it keeping up
status            the status page's figures
metrics_endpoints the metrics read at scrape time, and the worker's metrics server
"""
