# One image for web, worker, beat and flower (docker-compose.yml picks the process by command).
# Dependencies are installed by `make install`, the command CI runs, from an exact lock:
# requirements/base.txt by default (a ClickHouse server; no embedded engine), or
# --build-arg REQUIREMENTS=requirements/dev.txt for an image that can also run the tests.

FROM python:3.11.7-slim-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends make=4.3-4.1 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY Makefile ./
COPY requirements/ requirements/
ARG REQUIREMENTS=requirements/base.txt
RUN make install VENV=/opt/venv REQUIREMENTS=${REQUIREMENTS} PYTHON=python3

FROM python:3.11.7-slim-bookworm
# The image talks to a ClickHouse server (the compose file's clickhouse service): no embedded one.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    EMBEDDED_CLICKHOUSE=0
RUN groupadd --system --gid 10001 eventlog \
    && useradd --system --uid 10001 --gid eventlog --home-dir /app --shell /usr/sbin/nologin eventlog
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY --chown=eventlog:eventlog . .
# Static files are collected at build time, with a throwaway key and ClickHouse URL (nothing is
# connected to): settings refuse to start without them.
RUN DJANGO_SECRET_KEY=collectstatic-only CLICKHOUSE_URL=http://collectstatic-only@localhost/default \
    python src/manage.py collectstatic --no-input --verbosity 0 \
    && mkdir -p var \
    && chown -R eventlog:eventlog var
USER 10001:10001
EXPOSE 8000 5555 9540
CMD ["python", "scripts/run.py", "web"]
