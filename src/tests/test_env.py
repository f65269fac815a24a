from __future__ import annotations

from pathlib import Path

import pytest

from core.env import ConfigurationError, load_config

URL = "http://eventlog:s%40cret@127.0.0.1:8123/default"


def test_production_without_a_secret_key_fails_at_startup_naming_it() -> None:
    with pytest.raises(ConfigurationError, match="DJANGO_SECRET_KEY"):
        load_config({}, env_file=None)


def test_debug_runs_without_a_secret_key_and_defaults_fill_the_rest() -> None:
    config = load_config({"DJANGO_DEBUG": "1", "CLICKHOUSE_URL": URL}, env_file=None)
    assert config.relay_batch_size == 25_000
    assert config.relay_interval_seconds == 0.5
    assert config.ingest_max_events == 1000
    assert config.ingest_max_bytes == 5 * 1024 * 1024
    assert config.clickhouse_url == URL


def test_the_embedded_server_keeps_its_data_in_var_unless_clickhouse_is_a_server_of_its_own() -> None:
    default = load_config({"DJANGO_DEBUG": "1", "CLICKHOUSE_URL": URL}, env_file=None)
    assert default.embedded_clickhouse_path.endswith("/var/clickhouse")
    assert default.embedded_clickhouse_listen == ""
    server = load_config(
        {"DJANGO_DEBUG": "1", "CLICKHOUSE_URL": URL, "EMBEDDED_CLICKHOUSE": "0"}, env_file=None
    )
    assert server.embedded_clickhouse_path == ""


def test_clickhouse_url_is_required_and_a_chdb_url_says_where_the_path_went() -> None:
    with pytest.raises(ConfigurationError, match="CLICKHOUSE_URL is required"):
        load_config({"DJANGO_DEBUG": "1"}, env_file=None)
    with pytest.raises(ConfigurationError, match="EMBEDDED_CLICKHOUSE_PATH"):
        load_config({"DJANGO_DEBUG": "1", "CLICKHOUSE_URL": "chdb:///srv/ch"}, env_file=None)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RELAY_BATCH_SIZE", "lots"),
        ("RELAY_BATCH_SIZE", "0"),
        ("RELAY_INTERVAL_SECONDS", "soon"),
        ("DJANGO_DEBUG", "maybe"),
        ("DATABASE_URL", "mysql://localhost/x"),
        ("CLICKHOUSE_URL", "tcp://localhost:9000"),
    ],
)
def test_a_malformed_value_fails_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        load_config({"DJANGO_SECRET_KEY": "x", "CLICKHOUSE_URL": URL, name: value}, env_file=None)


def test_the_environment_wins_over_the_env_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("DJANGO_SECRET_KEY=from-file\nRELAY_BATCH_SIZE=500\nEVENTLOG_ENVIRONMENT=staging\n")
    config = load_config({"RELAY_BATCH_SIZE": "700", "CLICKHOUSE_URL": URL}, env_file=env_file)
    assert config.secret_key == "from-file"
    assert config.relay_batch_size == 700
    assert config.environment == "staging"


def test_database_url_is_split_into_django_fields() -> None:
    config = load_config(
        {
            "DJANGO_SECRET_KEY": "x",
            "CLICKHOUSE_URL": URL,
            "DATABASE_URL": "postgresql://app:p%40ss@db.local:6543/events",
        },
        env_file=None,
    )
    assert (config.database.user, config.database.password) == ("app", "p@ss")
    assert (config.database.host, config.database.port, config.database.name) == ("db.local", 6543, "events")


def test_clickhouse_server_settings_are_read_and_a_cluster_name_must_be_plain() -> None:
    config = load_config(
        {"DJANGO_DEBUG": "1", "CLICKHOUSE_URL": URL, "CLICKHOUSE_CONNECT_TIMEOUT": "2.5",
         "CLICKHOUSE_VERIFY": "0", "CLICKHOUSE_CA_CERT": "/ca.pem", "CLICKHOUSE_CLUSTER": "events_cluster"},
        env_file=None,
    )  # fmt: skip
    assert (config.clickhouse_connect_timeout, config.clickhouse_verify) == (2.5, False)
    assert (config.clickhouse_ca_cert, config.clickhouse_cluster) == ("/ca.pem", "events_cluster")
    with pytest.raises(ConfigurationError, match="CLICKHOUSE_CLUSTER"):
        load_config(
            {"DJANGO_DEBUG": "1", "CLICKHOUSE_URL": URL, "CLICKHOUSE_CLUSTER": "x; DROP"}, env_file=None
        )
