"""batchgate.settings: defaults, TOML, environment, overrides, coercion and upstream tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchgate.errors import ConfigError
from batchgate.settings import Settings, UpstreamConfig, env_var

KEY_VAR = "BATCHGATE_UNIT_TEST_UPSTREAM_KEY"


@pytest.fixture
def config(tmp_path):
    """config(text) → path of a TOML file holding `text`."""

    def write(text: str) -> Path:
        path = tmp_path / "batchgate.toml"
        path.write_text(text, encoding="utf-8")
        return path

    return write


def load(overrides=None, env=None) -> Settings:
    return Settings.load(overrides, env if env is not None else {})


def config_error(match: str, overrides=None, env=None) -> ConfigError:
    with pytest.raises(ConfigError, match=match) as info:
        load(overrides, env)
    assert info.value.code == "invalid_config"
    return info.value


# --- defaults ----------------------------------------------------------------------------------------------


def test_defaults():
    settings = load()
    assert settings == Settings()
    assert settings.host == "127.0.0.1"
    assert settings.port == 8080
    assert settings.data_dir == Path(".batchgate")
    assert settings.config is None
    assert settings.database_url is None and settings.storage_url is None
    assert settings.no_worker is False
    assert settings.completion_window_seconds == 86400
    assert settings.default_max_concurrency <= settings.max_concurrency_ceiling
    assert settings.upstreams == ()


def test_load_ignores_unrelated_environment():
    assert load(env={"PORT": "1", "HOME": "/x", "BATCHGATE": "y"}) == Settings()


def test_env_var_names():
    assert env_var("port") == "BATCHGATE_PORT"
    assert env_var("max_line_bytes") == "BATCHGATE_MAX_LINE_BYTES"


# --- precedence --------------------------------------------------------------------------------------------


def test_toml_top_level_keys(config):
    path = config(
        'host = "0.0.0.0"\nport = 9000\nmax_lines = 10\nretry_base_seconds = 0.25\nno_worker = true\n'
        'data_dir = "/srv/bg"\n'
    )
    settings = load({"config": str(path)})
    assert settings.host == "0.0.0.0"
    assert settings.port == 9000
    assert settings.max_lines == 10
    assert settings.retry_base_seconds == 0.25
    assert settings.no_worker is True
    assert settings.data_dir == Path("/srv/bg")
    assert settings.config == path


def test_config_path_from_env(config):
    path = config("port = 9001\n")
    settings = load(env={"BATCHGATE_CONFIG": str(path)})
    assert settings.port == 9001
    assert settings.config == path


def test_env_beats_toml(config):
    path = config("port = 1111\nhost = \"toml-host\"\n")
    settings = load({"config": str(path)}, {"BATCHGATE_PORT": "2222"})
    assert settings.port == 2222
    assert settings.host == "toml-host"


def test_overrides_beat_env_and_toml(config):
    path = config("port = 1111\n")
    settings = load({"config": str(path), "port": 3333}, {"BATCHGATE_PORT": "2222"})
    assert settings.port == 3333


def test_none_overrides_are_ignored():
    assert load({"port": None, "host": None}, {"BATCHGATE_PORT": "2222"}).port == 2222


def test_config_override_beats_config_env(config, tmp_path):
    path = config("port = 4444\n")
    settings = load({"config": str(path)}, {"BATCHGATE_CONFIG": str(tmp_path / "does-not-exist.toml")})
    assert settings.port == 4444


# --- coercion ----------------------------------------------------------------------------------------------


def test_env_values_are_coerced():
    settings = load(
        env={
            "BATCHGATE_PORT": "9999",
            "BATCHGATE_RETRY_MAX_SECONDS": "12.5",
            "BATCHGATE_DATA_DIR": "/tmp/bg-data",
            "BATCHGATE_LOG_LEVEL": "debug",
            "BATCHGATE_MAX_LINE_BYTES": " 2048 ",
        }
    )
    assert settings.port == 9999 and isinstance(settings.port, int)
    assert settings.retry_max_seconds == 12.5
    assert settings.data_dir == Path("/tmp/bg-data") and isinstance(settings.data_dir, Path)
    assert settings.log_level == "debug"
    assert settings.max_line_bytes == 2048


@pytest.mark.parametrize("raw", ["1", "true", "TRUE", "yes", "on", " True "])
def test_env_bool_true(raw):
    assert load(env={"BATCHGATE_NO_WORKER": raw}).no_worker is True


@pytest.mark.parametrize("raw", ["0", "false", "no", "off", "FALSE"])
def test_env_bool_false(raw):
    assert load(env={"BATCHGATE_NO_WORKER": raw}).no_worker is False


@pytest.mark.parametrize("raw", ["ture", "maybe", "2"])
def test_env_bool_garbage_is_an_error(raw):
    config_error("no_worker", env={"BATCHGATE_NO_WORKER": raw})


@pytest.mark.parametrize(
    "name, raw",
    [
        ("BATCHGATE_PORT", "abc"),
        ("BATCHGATE_PORT", "80.5"),
        ("BATCHGATE_MAX_LINES", "1e3"),
        ("BATCHGATE_RETRY_BASE_SECONDS", "fast"),
        ("BATCHGATE_MAX_ATTEMPTS", ""),
    ],
)
def test_env_bad_values_name_the_setting_and_variable(name, raw):
    setting = name.removeprefix("BATCHGATE_").lower()
    error = config_error(setting, env={name: raw})
    assert name in error.message
    assert repr(raw) in error.message


def test_override_values_are_coerced():
    settings = load({"port": "7000", "max_lines": 3.0, "data_dir": "/x/y"})
    assert settings.port == 7000 and settings.max_lines == 3 and isinstance(settings.max_lines, int)
    assert settings.data_dir == Path("/x/y")


def test_non_integral_float_for_int_setting():
    error = config_error("max_lines", {"max_lines": 2.5})
    assert "int" in error.message


def test_bad_toml_value(config):
    path = config('port = "eighty"\n')
    error = config_error("port", {"config": str(path)})
    assert "'eighty'" in error.message


def test_toml_bool_for_int_setting_is_an_error(config):
    path = config("max_attempts = true\n")
    config_error("max_attempts", {"config": str(path)})


@pytest.mark.parametrize(
    "name",
    [
        "port",
        "max_lines",
        "max_line_bytes",
        "max_attempts",
        "lease_seconds",
        "default_max_concurrency",
        "completion_window_seconds",
    ],
)
@pytest.mark.parametrize("value", [0, -1])
def test_positive_settings(name, value):
    error = config_error(name, {name: value})
    assert "positive" in error.message


def test_default_concurrency_above_ceiling():
    config_error("default_max_concurrency", {"default_max_concurrency": 10, "max_concurrency_ceiling": 5})
    assert load({"default_max_concurrency": 5, "max_concurrency_ceiling": 5}).default_max_concurrency == 5


# --- config file problems ----------------------------------------------------------------------------------


def test_unknown_toml_key(config):
    path = config("port = 1\nprot = 2\nworkers = 3\n")
    error = config_error("unknown setting", {"config": str(path)})
    assert "prot" in error.message and "workers" in error.message and str(path) in error.message


def test_missing_config_file(tmp_path):
    path = tmp_path / "nope.toml"
    error = config_error("does not exist", {"config": str(path)})
    assert str(path) in error.message


def test_invalid_toml(config):
    path = config("port = = 1\n")
    config_error("not valid TOML", {"config": str(path)})


def test_toml_not_utf8(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'host = "caf\xe9"\n')
    config_error("not valid TOML", {"config": str(path)})


# --- [[upstreams]] -----------------------------------------------------------------------------------------


def test_upstreams(config):
    path = config("""
[[upstreams]]
name = "gpu-pool"
base_url = "http://10.0.0.5:8000/v1/"
api_key = "sk-pool"
models = ["llama-*", "qwen*"]
max_concurrency = 256

[[upstreams]]
name = "fallback"
base_url = "https://api.example.com/v1"
""")
    settings = load({"config": str(path)})
    assert settings.upstreams == (
        UpstreamConfig(
            name="gpu-pool",
            base_url="http://10.0.0.5:8000/v1",
            models=("llama-*", "qwen*"),
            api_key="sk-pool",
            max_concurrency=256,
        ),
        UpstreamConfig(name="fallback", base_url="https://api.example.com/v1", models=("*",)),
    )
    assert settings.upstreams[0].kind == "openai"


def test_upstream_models_as_a_single_string(config):
    path = config('[[upstreams]]\nname = "a"\nbase_url = "http://a"\nmodels = "gpt-*"\n')
    assert load({"config": str(path)}).upstreams[0].models == ("gpt-*",)


@pytest.mark.parametrize(
    "base_url, stripped",
    [("http://h:1/v1/", "http://h:1/v1"), ("http://h:1/v1//", "http://h:1/v1"), ("http://h:1/v1", "http://h:1/v1")],
)
def test_upstream_base_url_trailing_slash_is_stripped(config, base_url, stripped):
    path = config(f'[[upstreams]]\nname = "a"\nbase_url = "{base_url}"\n')
    assert load({"config": str(path)}).upstreams[0].base_url == stripped


def upstream_error(config, table: str, match: str, index: int = 1) -> ConfigError:
    before = '[[upstreams]]\nname = "ok"\nbase_url = "http://ok"\n' * (index - 1)
    path = config(before + "[[upstreams]]\n" + table)
    error = config_error(match, {"config": str(path)})
    assert f"upstream #{index}" in error.message
    assert str(path) in error.message
    return error


@pytest.mark.parametrize(
    "table", ['base_url = "http://a"\n', 'name = ""\nbase_url = "http://a"\n', 'name = 5\nbase_url = "http://a"\n']
)
def test_upstream_name_required(config, table):
    upstream_error(config, table, "'name' is required")


@pytest.mark.parametrize("table", ['name = "a"\n', 'name = "a"\nbase_url = ""\n', 'name = "a"\nbase_url = 1\n'])
def test_upstream_base_url_required(config, table):
    upstream_error(config, table, "'base_url' is required")


@pytest.mark.parametrize("url", ["localhost:8000/v1", "ftp://h/v1", "http:///v1", "http://h:port/v1", "h"])
def test_upstream_base_url_must_be_an_http_url_with_a_host(config, url):
    error = upstream_error(config, f'name = "a"\nbase_url = "{url}"\n', "'base_url' must be an http:// or https://")
    assert repr(url) in error.message


def test_upstream_error_names_the_right_table(config):
    upstream_error(config, 'name = "third"\n', "'base_url' is required", index=3)


@pytest.mark.parametrize("models", ["[]", "[1, 2]", "5", '{ a = "b" }', '["ok", 3]'])
def test_upstream_bad_models(config, models):
    upstream_error(config, f'name = "a"\nbase_url = "http://a"\nmodels = {models}\n', "'models'")


@pytest.mark.parametrize("cap", ["0", "-1", '"8"', "1.5"])
def test_upstream_bad_max_concurrency(config, cap):
    upstream_error(config, f'name = "a"\nbase_url = "http://a"\nmax_concurrency = {cap}\n', "'max_concurrency'")


def test_upstream_bool_max_concurrency(config):
    upstream_error(config, 'name = "a"\nbase_url = "http://a"\nmax_concurrency = true\n', "'max_concurrency'")


def test_upstream_unknown_key(config):
    error = upstream_error(config, 'name = "a"\nbase_url = "http://a"\nmodel = "x"\n', "unknown key")
    assert "model" in error.message


@pytest.mark.parametrize("text", ['upstreams = "http://a"\n', "upstreams = 5\n"])
def test_upstreams_must_be_an_array_of_tables(config, text):
    config_error(r"\[\[upstreams\]\]", {"config": str(config(text))})


def test_upstream_entry_must_be_a_table(config):
    path = config("upstreams = [1, 2]\n")
    error = config_error("must be a table", {"config": str(path)})
    assert "upstream #1" in error.message


def test_api_key_env_unset(config, monkeypatch):
    monkeypatch.delenv(KEY_VAR, raising=False)
    error = upstream_error(config, f'name = "a"\nbase_url = "http://a"\napi_key_env = "{KEY_VAR}"\n', "not set")
    assert KEY_VAR in error.message


def test_api_key_env_set(config, monkeypatch):
    monkeypatch.setenv(KEY_VAR, "sk-from-env")
    path = config(f'[[upstreams]]\nname = "a"\nbase_url = "http://a"\napi_key_env = "{KEY_VAR}"\n')
    upstream = load({"config": str(path)}, {KEY_VAR: "sk-from-env"}).upstreams[0]
    assert upstream.api_key == "sk-from-env"
    assert not hasattr(upstream, "api_key_env")


def test_api_key_env_is_read_from_the_given_env(config, monkeypatch):
    monkeypatch.delenv(KEY_VAR, raising=False)
    path = config(f'[[upstreams]]\nname = "a"\nbase_url = "http://a"\napi_key_env = "{KEY_VAR}"\n')
    assert load({"config": str(path)}, {KEY_VAR: "sk-injected"}).upstreams[0].api_key == "sk-injected"


# --- resolved URLs -----------------------------------------------------------------------------------------


def test_resolved_urls_default_inside_data_dir(tmp_path):
    settings = load({"data_dir": str(tmp_path / "data")})
    assert settings.resolved_database_url == f"sqlite:///{(tmp_path / 'data' / 'batchgate.db').resolve()}"
    assert settings.resolved_storage_url == str((tmp_path / "data" / "files").resolve())


def test_resolved_urls_are_absolute_for_a_relative_data_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load()
    db_path = Path(settings.resolved_database_url.removeprefix("sqlite:///"))
    assert db_path.is_absolute()
    assert db_path == (tmp_path / ".batchgate" / "batchgate.db").resolve()
    assert Path(settings.resolved_storage_url) == (tmp_path / ".batchgate" / "files").resolve()


def test_explicit_urls_win():
    settings = load(env={"BATCHGATE_DATABASE_URL": "postgresql://u@h/db", "BATCHGATE_STORAGE_URL": "s3://b/p"})
    assert settings.resolved_database_url == "postgresql://u@h/db"
    assert settings.resolved_storage_url == "s3://b/p"


def test_a_local_upstream_needs_no_base_url(config):
    path = config('[[upstreams]]\nname = "builtin"\nkind = "local"\nmodels = ["smollm2-*"]\n')
    upstream = load({"config": str(path)}).upstreams[0]
    assert (upstream.name, upstream.kind, upstream.base_url) == ("builtin", "local", "")
    assert upstream.models == ("smollm2-*",)


def test_an_openai_upstream_still_needs_a_base_url(config):
    path = config('[[upstreams]]\nname = "remote"\nkind = "openai"\n')
    with pytest.raises(ConfigError, match="'base_url' is required"):
        load({"config": str(path)})


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("local_chat_slots", "0", "local_chat_slots must be positive"),
        ("local_threads", "-1", "local_threads must be 0"),
    ],
)
def test_local_model_settings_are_checked(name, value, message):
    config_error(message, env={env_var(name): value})


def test_local_model_settings_from_the_environment():
    settings = load(env={env_var("local_chat_slots"): "2", env_var("local_threads"): "1"})
    assert (settings.local_chat_slots, settings.local_threads) == (2, 1)


def test_local_threads_default_to_all_cores_but_one(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert load().resolved_local_threads == 7
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    assert load().resolved_local_threads == 1
    assert load(env={env_var("local_threads"): "3"}).resolved_local_threads == 3


def test_database_urls_are_shown_without_their_password():
    from batchgate.store.redact import redact

    assert redact("postgresql://app:s3cret@db:5432/bg") == "postgresql://app@db:5432/bg"
    assert redact("postgresql://app@db/bg") == "postgresql://app@db/bg"
    assert redact("sqlite:////var/lib/bg.db") == "sqlite:////var/lib/bg.db"


def test_the_ramp_of_an_idle_upstream_may_be_turned_off_but_not_negative():
    assert load(env={env_var("ramp_seconds"): "0"}).ramp_seconds == 0.0
    assert load(env={}).ramp_seconds == 0.2
    config_error("ramp_seconds must be 0", env={env_var("ramp_seconds"): "-0.1"})


def test_the_headroom_of_interactive_calls_may_be_zero_but_not_negative():
    assert load(env={}).interactive_headroom == 2
    assert load(env={env_var("interactive_headroom"): "0"}).interactive_headroom == 0
    config_error("interactive_headroom must be 0", env={env_var("interactive_headroom"): "-1"})
