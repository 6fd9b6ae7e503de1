"""Throughput keys of the config file: rpm/tpm/min_concurrency/adaptive on [[upstreams]], and [[limits]]."""

from __future__ import annotations

import pytest

from batchgate.errors import ConfigError
from batchgate.settings import ModelLimits, Settings, scalar_fields


def load(tmp_path, text: str, env: dict | None = None) -> Settings:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return Settings.load({"config": str(path)}, env or {})


def test_upstream_rate_keys_and_model_limits(tmp_path):
    settings = load(
        tmp_path,
        """
eject_after_failures = 2
[[upstreams]]
name = "hosted"
base_url = "https://api.example.com/v1"
rpm = 500
tpm = 200000
max_concurrency = 64
min_concurrency = 2
adaptive = false

[[limits]]
model = "gpt-4o*"
rpm = 100
tpm = 30000.5
max_concurrency = 8
""",
    )
    upstream = settings.upstreams[0]
    assert (upstream.rpm, upstream.tpm, upstream.max_concurrency, upstream.min_concurrency, upstream.adaptive) == (
        500,
        200000,
        64,
        2,
        False,
    )
    assert settings.limits == (ModelLimits("gpt-4o*", rpm=100, tpm=30000.5, max_concurrency=8),)
    assert settings.eject_after_failures == 2


def test_defaults_adapt_and_have_no_windows(tmp_path):
    upstream = load(tmp_path, '[[upstreams]]\nname = "u"\nbase_url = "http://u/v1"\n').upstreams[0]
    assert upstream.adaptive and upstream.rpm is None and upstream.tpm is None


def test_health_settings_come_from_the_environment_too():
    settings = Settings.load({}, {"BATCHGATE_EJECT_SECONDS": "2.5", "BATCHGATE_EJECT_AFTER_FAILURES": "7"})
    assert (settings.eject_seconds, settings.eject_after_failures) == (2.5, 7)
    assert "limits" not in scalar_fields() and "upstreams" not in scalar_fields()


@pytest.mark.parametrize(
    "table, message",
    [
        ('rpm = 0', "'rpm' must be a positive number"),
        ('tpm = "lots"', "'tpm' must be a positive number"),
        ('min_concurrency = 1.5', "'min_concurrency' must be a positive integer"),
        ('adaptive = "yes"', "'adaptive' must be true or false"),
        ('prompt_cache_slots = 0', "'prompt_cache_slots' must be a positive integer"),
        ('max_concurrency = 4\nmin_concurrency = 8', "'min_concurrency' (8) must not exceed 'max_concurrency' (4)"),
    ],
)
def test_bad_upstream_keys_say_what_to_fix(tmp_path, table, message):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, f'[[upstreams]]\nname = "u"\nbase_url = "http://u/v1"\n{table}\n')
    assert message in info.value.message and "upstream #1" in info.value.message


@pytest.mark.parametrize(
    "text, message",
    [
        ('[[limits]]\nrpm = 5', "'model' is required"),
        ('[[limits]]\nmodel = "m"\nrpm = -1', "'rpm' must be a positive number"),
        ('[[limits]]\nmodel = "m"\nmax_concurrency = true', "'max_concurrency' must be a positive integer"),
        ('[[limits]]\nmodel = "m"\nburst = 5', "unknown key(s) burst"),
        ('limits = 5', "limits must be an array of tables"),
    ],
)
def test_bad_limits_say_what_to_fix(tmp_path, text, message):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    assert message in info.value.message


def test_health_settings_must_be_positive():
    with pytest.raises(ConfigError):
        Settings.load({}, {"BATCHGATE_EJECT_AFTER_FAILURES": "0"})
