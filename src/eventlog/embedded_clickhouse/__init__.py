"""The embedded ClickHouse server: chDB, the real engine, served over ClickHouse's HTTP interface.

Only one OS process may open a chDB data path, so this process owns it and every other process
(web, worker, commands, scripts, clickhouse-connect, curl) reaches the engine over HTTP, exactly as it
would reach a ClickHouse server. `manage.py embedded_clickhouse` (`make clickhouse`) runs it.

config      what it serves (address, credentials, data path), handed over by the command
__main__    the server program, as `manage.py embedded_clickhouse` starts it
statements  the little SQL it must read itself (an INSERT's rows, a result's format)
bodies      request bodies: Content-Length or chunked, compressed frame by frame, within limits
engine      chDB handles as sessions; a request's settings for that request only
protocol    HTTP request -> engine query -> HTTP response
errors      errors as a server sends them: code, name, text, HTTP status
server      the HTTP/1.1 server process
"""

# The engine's allocator (jemalloc) keeps freed pages for 5 s by default; the relay's batches are
# freed several times a second, so the process held seconds' worth of them. The allocator reads this
# once, when chDB is loaded (engine.py sets it just before); an operator's JE_MALLOC_CONF wins.
ALLOCATOR = "dirty_decay_ms:0,muzzy_decay_ms:0"
# Merges are most of the engine's memory: each holds buffers for every part it reads, and a server
# runs up to 32 at once. One at a time keeps up with the relay (docs/benchmarks.md).
ENGINE_OPTIONS = {"background_pool_size": 1, "background_merges_mutations_concurrency_ratio": 1}
