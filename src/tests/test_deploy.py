"""The deployment files, checked without Docker (none runs here): the Compose file against the
Compose specification's schema and for its wiring, the Dockerfile with hadolint, and Django's
deployment checks with production settings."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from core.env import load_config

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_SCHEMA = ROOT / "var" / "compose-spec" / "compose-spec.json"  # fetched by `make test`
APP_SERVICES = ("migrate", "web", "worker", "beat", "flower")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def test_the_compose_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    if not COMPOSE_SCHEMA.is_file():
        pytest.skip(f"{COMPOSE_SCHEMA} missing: `make test` fetches it")
    validator = jsonschema.Draft201909Validator(json.loads(COMPOSE_SCHEMA.read_text()))
    assert [error.message for error in validator.iter_errors(compose)] == []


def test_the_compose_file_runs_every_process_from_one_image_with_what_it_needs(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "clickhouse", *APP_SERVICES, "prometheus", "grafana"}
    assert all("image" in service or "build" in service for service in services.values())
    assert {(services[name]["image"], json.dumps(services[name]["build"])) for name in APP_SERVICES} == {
        (services["web"]["image"], json.dumps(services["web"]["build"]))
    }
    for name in APP_SERVICES:
        service = services[name]
        assert service["env_file"] == ["src/core/.env"]
        assert {"DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL", "CLICKHOUSE_URL"} <= set(
            service["environment"]
        )
        assert service["environment"]["CLICKHOUSE_URL"].startswith("http://")  # the server, not chDB
    for name in ("web", "worker", "beat", "flower"):
        assert services[name]["command"] == ["python", "scripts/run.py", name]
    assert "8000:8000" in services["web"]["ports"]
    assert services["web"]["environment"]["WEB_BIND"] == "0.0.0.0:8000"
    assert "5555:5555" in services["flower"]["ports"]
    assert services["flower"]["environment"]["FLOWER_ADDRESS"] == "0.0.0.0"  # noqa: S104 (in its container)
    assert services["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")
    assert "migrate_clickhouse" in " ".join(services["migrate"]["command"])


def test_beat_runs_once_and_everything_starts_in_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    beat = services["beat"]
    assert "scale" not in beat
    assert beat.get("deploy", {}).get("replicas", 1) == 1
    for name in ("postgres", "redis", "clickhouse", "web"):
        assert "healthcheck" in services[name]
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert services["migrate"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"}, "clickhouse": {"condition": "service_healthy"}
    }  # fmt: skip
    named = {
        volume.split(":")[0]
        for service in services.values()
        for volume in service.get("volumes", [])
        if not volume.startswith("./")
    }
    assert named == set(compose["volumes"])


def test_prometheus_and_grafana_are_provisioned_from_the_repository(compose: dict[str, Any]) -> None:
    mounted = [
        volume.split(":")[0]
        for name in ("prometheus", "grafana")
        for volume in compose["services"][name]["volumes"]
        if volume.startswith("./")
    ]
    assert mounted
    assert all((ROOT / path).exists() for path in mounted)
    scraped = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    targets = {t for job in scraped["scrape_configs"] for c in job["static_configs"] for t in c["targets"]}
    assert targets == {"web:8000", "worker:9540"}


def test_every_setting_read_is_documented_in_the_env_example() -> None:
    read = set(re.findall(r'env\.\w+\(\s*"([A-Z_]+)"', (ROOT / "src" / "core" / "env.py").read_text()))
    example = (ROOT / "src" / "core" / ".env.example").read_text()
    documented = set(re.findall(r"^#? ?([A-Z_]+)=", example, flags=re.MULTILINE))
    assert len(read) > 30
    assert read - documented == set()


def test_the_dockerfile_passes_hadolint_and_installs_with_the_command_ci_runs() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run([str(hadolint), str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "RUN make install VENV=/opt/venv REQUIREMENTS=${REQUIREMENTS}" in dockerfile
    assert "make test" in (ROOT / ".ci" / "run").read_text()  # which runs `make install` first
    assert re.search(r"^USER \d+:\d+$", dockerfile, flags=re.MULTILINE)  # not root


def test_djangos_deployment_checks_pass_with_production_settings(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "core.settings",
        "DJANGO_SECRET_KEY": "q" + "".join(chr(33 + (i * 7) % 90) for i in range(60)).replace("$", "x"),
        "DJANGO_HTTPS": "1",
        "DJANGO_ALLOWED_HOSTS": "events.example.com",
        "CLICKHOUSE_URL": "https://eventlog:secret@clickhouse.example.com:8443/eventlog",
        "WEB_METRICS_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT / "src", env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_celery_speaks_json_only() -> None:
    from django.conf import settings

    assert settings.CELERY_TASK_SERIALIZER == "json"
    assert settings.CELERY_ACCEPT_CONTENT == ["json"]


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="starts a Redis server of its own")
def test_the_relays_shared_state_works_on_a_redis_with_a_password(tmp_path: Path) -> None:
    from redis import Redis
    from redis.exceptions import AuthenticationError, ResponseError
    from redis.exceptions import ConnectionError as RedisConnectionError

    from eventlog.scheduling.coordination import RelayCoordinator
    from tests.test_processes import free_port

    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--requirepass", "s3cret", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"redis://:s3cret@127.0.0.1:{port}/0"
        for _ in range(50):
            try:
                Redis.from_url(url).ping()
                break
            except RedisConnectionError:  # not listening yet
                time.sleep(0.1)
        with pytest.raises((AuthenticationError, ResponseError)):
            Redis.from_url(f"redis://127.0.0.1:{port}/0").set("k", "v")
        coordinator = RelayCoordinator(Redis.from_url(url), slots=1)
        lease = coordinator.try_acquire_slot()
        assert lease is not None
        assert coordinator.try_acquire_slot() is None
        lease.release()
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_a_first_make_run_writes_a_new_secret_key_and_clickhouse_password_into_the_env_file(
    tmp_path: Path,
) -> None:
    urls = set()
    for checkout in (tmp_path / "a", tmp_path / "b"):
        (checkout / "src" / "core").mkdir(parents=True)
        shutil.copy(ROOT / "Makefile", checkout)
        shutil.copy(ROOT / "src" / "core" / ".env.example", checkout / "src" / "core")
        subprocess.run(["make", "-s", "src/core/.env", f"PYTHON={sys.executable}"], cwd=checkout,
                       check=True, capture_output=True)  # fmt: skip
        config = load_config({}, env_file=checkout / "src" / "core" / ".env")
        assert len(config.secret_key) >= 50
        assert re.fullmatch(r"http://eventlog:[\w-]{24,}@127\.0\.0\.1:8123/default", config.clickhouse_url)
        assert urlsplit(config.clickhouse_url).password
        urls.add(config.clickhouse_url)
    assert len(urls) == 2  # each machine its own password
