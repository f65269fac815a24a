"""The relay core: committed outbox events into ClickHouse, each exactly once.

It is given its sink (a `BatchSink`) and knows nothing of Celery, Redis, a ClickHouse client or
the HTTP edge (an import contract in pyproject.toml).

delivery   claim a batch of a snapshot window, deliver it under its token, settle it
poison     find the events ClickHouse rejects in a batch and set them aside
retention  remove delivered batches once they are old enough
"""
