"""One Settings object, built once at the entry point and passed down.

Precedence, lowest first: defaults < top-level keys of the TOML config file <
`BATCHGATE_<FIELD>` environment variables < command-line flags.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from batchgate.domain.nesting import DEPTH_CEILING
from batchgate.errors import ConfigError

ENV_PREFIX = "BATCHGATE_"
LOG_FORMATS = ("text", "json")  # logs.py has one formatter for each


@dataclass(frozen=True)
class UpstreamConfig:
    """One `[[upstreams]]` table: where requests for some models go."""

    name: str
    base_url: str = ""
    models: tuple[str, ...] = ("*",)
    kind: str = "openai"
    api_key: str | None = None
    max_concurrency: int | None = None
    timeout_seconds: float | None = None
    # Throughput: rate windows, and the adaptive concurrency range (min_concurrency..max_concurrency)
    rpm: float | None = None
    tpm: float | None = None
    min_concurrency: int = 4
    adaptive: bool = True
    # A server whose prompt cache is per slot (llama.cpp's --parallel, Ollama): that many slots, so prefix
    # groups take turns there (docs/caching.md). Unset: a cache shared by all it runs (vLLM, SGLang).
    prompt_cache_slots: int | None = None


@dataclass(frozen=True)
class ModelLimits:
    """One `[[limits]]` table: rate windows and a cap for each model whose name matches `model`."""

    model: str
    rpm: float | None = None
    tpm: float | None = None
    max_concurrency: int | None = None


@dataclass(frozen=True)
class Settings:
    # Where and how to serve
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path(".batchgate")
    config: Path | None = None
    database_url: str | None = None  # default: sqlite inside data_dir
    storage_url: str | None = None  # default: a folder inside data_dir
    log_level: str = "info"
    log_format: str = "text"  # or "json": one JSON object per line (logs.py)
    no_worker: bool = False  # serve the API only; run `batchgate worker` processes elsewhere
    metrics_enabled: bool = True  # GET /metrics (Prometheus text format); off: a 404
    metrics_port: int | None = None  # a `batchgate worker`'s own /metrics listener (on `host`)

    # Batch limits
    completion_window_seconds: int = 86400
    file_retention_seconds: int = 30 * 86400
    default_max_concurrency: int = 64
    max_concurrency_ceiling: int = 1024
    max_lines: int = 1_000_000
    max_line_bytes: int = 8 * 1024 * 1024
    max_file_bytes: int = 2 * 1024**3
    max_reported_errors: int = 100
    # What one request body may be: JSON bodies (create batch, synchronous calls) are read whole up to this,
    # the size of the biggest line a batch accepts, so a request that is fine in a batch is fine alone.
    max_json_body_bytes: int = 8 * 1024 * 1024
    # Arrays and objects nested in one another, in a request body or a batch line. orjson writes at most
    # 254 levels, so deeper input could be read but never sent on.
    max_json_depth: int = 64

    # Calling upstreams
    max_attempts: int = 5
    retry_base_seconds: float = 0.5
    retry_max_seconds: float = 60.0
    request_timeout_seconds: float = 600.0
    cancel_grace_seconds: float = 30.0

    # Worker cadence
    poll_interval_seconds: float = 0.5
    commit_interval_seconds: float = 0.05
    lease_seconds: float = 20.0
    retention_interval_seconds: float = 60.0
    stale_temp_seconds: float = 3600.0  # scratch files untouched this long were left by a crash

    # Built-in local models (the `local` upstream kind)
    local_chat_slots: int = 4  # chat requests the local chat model decodes at once
    local_threads: int = 0  # CPU threads per local engine; 0 = all cores but one

    # Upstream health: an upstream of a pool failing this many attempts in a row is taken out, probed back after
    eject_after_failures: int = 5
    eject_seconds: float = 5.0
    # An idle upstream's window of requests in flight opens over this long, not all at once (domain/ramp.py)
    ramp_seconds: float = 0.2
    # Synchronous calls go before batch lines at an upstream's door and may be this many over its limit
    # in flight, so a batch that fills the upstream does not make a chat call wait for a batch line's answer
    interactive_headroom: int = 2
    # Sporadic 429s delay their own requests; 429s that cluster pause the upstream (domain/throttle.py):
    # at least rate_limit_min_refusals and rate_limit_share of its answers within rate_limit_window_seconds
    rate_limit_window_seconds: float = 1.0
    rate_limit_share: float = 0.5
    rate_limit_min_refusals: int = 20
    rate_limit_pause_seconds: float = 1.0  # a pause's length when the upstream names none
    # Refusals above this share of recent answers lower the adaptive limit; below it they are sporadic
    adaptive_refusal_share: float = 0.25

    # Cache-aware execution (docs/caching.md): the lines of a prefix group (domain/prefix.py) go to one member
    # of a pool while its load stays within affinity_load_factor of the pool's mean (bounded-load hashing)
    cache_aware: bool = True
    affinity_load_factor: float = 1.25
    # The first line of a group goes ahead; its siblings wait for its answer at most this long
    cache_warm_wait_seconds: float = 0.5

    # Sharing work between workers: a running batch is cut into shards of lines, each leased by one worker
    shard_lines: int = 500  # requests per shard
    worker_shards: int = 16  # shards one worker works on at once: room for other batches beside a big one
    max_shards_per_batch: int = 8  # shards of one batch worked on at once, by all workers together

    # Connections (api/server.py): slow or idle clients are let go, and connections beyond the cap refused
    header_timeout_seconds: float = 20.0  # a request's head must be whole this long after its first byte came
    body_timeout_seconds: float = 30.0  # a request body is cut if any span this long brings less than the rate below
    body_min_bytes_per_second: int = 1024  # ... so an upload at any honest speed is never cut, however long
    idle_timeout_seconds: float = 75.0  # a connection that has not sent its next request this long is closed
    max_connections: int = 512  # client connections at once (at most half the file descriptor limit); more get 503

    # Webhooks: delivery attempts, retried on failure with doubling waits from base to max, for the window
    webhooks_allow_private: bool = False  # URLs on loopback, link-local and private addresses are refused unless true
    webhook_timeout_seconds: float = 10.0  # one attempt's whole time, connect to last byte
    webhook_retry_base_seconds: float = 5.0
    webhook_retry_max_seconds: float = 3600.0
    webhook_retry_window_seconds: float = 86400.0  # retried until this long after the event
    webhook_concurrency: int = 16  # attempts in flight at once per worker

    # Memory: glibc malloc arenas the process's threads share (0 = glibc's default, 8 per core)
    malloc_arenas: int = 2

    upstreams: tuple[UpstreamConfig, ...] = field(default=())
    limits: tuple[ModelLimits, ...] = field(default=())

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'batchgate.db').resolve()}"

    @property
    def resolved_local_threads(self) -> int:
        # The engines sync their threads at every step, which stalls when they outnumber free cores:
        # leave one to the event loop.
        return self.local_threads or max(1, (os.cpu_count() or 1) - 1)

    @property
    def resolved_storage_url(self) -> str:
        return self.storage_url or str((self.data_dir / "files").resolve())

    @classmethod
    def load(cls, overrides: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from the config file, the environment and explicit overrides."""
        env = os.environ if env is None else env
        overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
        from_env = {name: env[env_var(name)] for name in scalar_fields() if env_var(name) in env}
        config_path = overrides.get("config") or from_env.get("config")
        from_file, upstreams, limits = _read_config_file(Path(config_path), env) if config_path else ({}, (), ())
        values: dict[str, Any] = {}
        for source in (from_file, from_env, overrides):
            for name, raw in source.items():
                values[name] = _coerce(name, raw)
        settings = cls(**values, upstreams=upstreams, limits=limits)
        settings.check()
        return settings

    def check(self) -> None:
        positive = (
            "port",
            "completion_window_seconds",
            "default_max_concurrency",
            "max_concurrency_ceiling",
            "max_lines",
            "max_line_bytes",
            "max_file_bytes",
            "max_attempts",
            "lease_seconds",
            "local_chat_slots",
            "eject_after_failures",
            "eject_seconds",
            "shard_lines",
            "worker_shards",
            "max_shards_per_batch",
            "header_timeout_seconds",
            "body_timeout_seconds",
            "body_min_bytes_per_second",
            "idle_timeout_seconds",
            "max_connections",
            "max_json_body_bytes",
            "max_json_depth",
            "rate_limit_window_seconds",
            "rate_limit_min_refusals",
            "rate_limit_pause_seconds",
            "webhook_timeout_seconds",
            "webhook_retry_base_seconds",
            "webhook_retry_max_seconds",
            "webhook_retry_window_seconds",
            "webhook_concurrency",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"setting {name} must be positive, got {getattr(self, name)!r}")
        if self.metrics_port is not None and not 0 < self.metrics_port < 65536:
            raise ConfigError(f"setting metrics_port must be a port number (1-65535), got {self.metrics_port!r}")
        if self.log_format not in LOG_FORMATS:
            raise ConfigError(f"setting log_format must be one of {', '.join(LOG_FORMATS)}, got {self.log_format!r}")
        if self.cache_warm_wait_seconds < 0:
            raise ConfigError("setting cache_warm_wait_seconds must be 0 (no wait) or positive")
        if self.ramp_seconds < 0:
            raise ConfigError("setting ramp_seconds must be 0 (open at once) or positive")
        for name in ("rate_limit_share", "adaptive_refusal_share"):
            if not 0 < getattr(self, name) <= 1:
                raise ConfigError(f"setting {name} must be a share in (0, 1], got {getattr(self, name)!r}")
        if self.affinity_load_factor < 1:
            raise ConfigError(f"setting affinity_load_factor must be at least 1, got {self.affinity_load_factor!r}")
        if self.interactive_headroom < 0:
            raise ConfigError("setting interactive_headroom must be 0 (only the next free slot) or positive")
        if self.local_threads < 0:
            raise ConfigError("setting local_threads must be 0 (all cores but one) or positive")
        if self.max_json_depth > DEPTH_CEILING:
            raise ConfigError(
                f"setting max_json_depth must be at most {DEPTH_CEILING}: deeper JSON "
                f"could not be sent on to an upstream"
            )
        if self.default_max_concurrency > self.max_concurrency_ceiling:
            raise ConfigError("default_max_concurrency must not exceed max_concurrency_ceiling")


TABLES = ("upstreams", "limits")  # arrays of tables in the config file, not scalar settings


def env_var(name: str) -> str:
    return ENV_PREFIX + name.upper()


def scalar_fields() -> dict[str, type]:
    hints = typing.get_type_hints(Settings)
    return {f.name: _base_type(hints[f.name]) for f in dataclasses.fields(Settings) if f.name not in TABLES}


def _base_type(hint: Any) -> type:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


BOOL_WORDS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def _coerce(name: str, raw: Any) -> Any:
    kind = scalar_fields()[name]
    try:
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            return BOOL_WORDS[str(raw).strip().lower()]
        if isinstance(raw, bool) or (kind is int and isinstance(raw, float) and not raw.is_integer()):
            raise ValueError(f"not {kind.__name__}")
        return raw if isinstance(raw, kind) else kind(raw)
    except (TypeError, ValueError, KeyError):
        raise ConfigError(f"setting {name} ({env_var(name)}) must be {kind.__name__}, got {raw!r}") from None


def _read_config_file(
    path: Path, env: Mapping[str, str]
) -> tuple[dict[str, Any], tuple[UpstreamConfig, ...], tuple[ModelLimits, ...]]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    tables = data.pop("upstreams", [])
    limit_tables = data.pop("limits", [])
    unknown = set(data) - set(scalar_fields()) - {"config"}
    if unknown:
        raise ConfigError(f"config file {path}: unknown setting(s) {', '.join(sorted(unknown))}")
    if not isinstance(tables, list):
        raise ConfigError(f"config file {path}: upstreams must be an array of tables ([[upstreams]])")
    if not isinstance(limit_tables, list):
        raise ConfigError(f"config file {path}: limits must be an array of tables ([[limits]])")
    return (
        data,
        tuple(_upstream(i, t, path, env) for i, t in enumerate(tables, 1)),
        tuple(_limits(i, t, path) for i, t in enumerate(limit_tables, 1)),
    )


def _upstream(index: int, table: Any, path: Path, env: Mapping[str, str]) -> UpstreamConfig:
    where = f"config file {path}, upstream #{index}"
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table")
    table = dict(table)
    key_env = table.pop("api_key_env", None)
    if key_env is not None:
        if key_env not in env:
            raise ConfigError(f"{where}: api_key_env names {key_env}, which is not set")
        table["api_key"] = env[key_env]
    known = {f.name for f in dataclasses.fields(UpstreamConfig)}
    unknown = set(table) - known
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    # A local upstream runs in this process, so it has no address.
    for required in ("name",) if table.get("kind") == "local" else ("name", "base_url"):
        if not isinstance(table.get(required), str) or not table[required]:
            raise ConfigError(f"{where}: '{required}' is required and must be a string")
    models = table.get("models", ["*"])
    if isinstance(models, str):
        models = [models]
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models) or not models:
        raise ConfigError(f"{where}: 'models' must be a list of glob patterns")
    table["models"] = tuple(models)
    table["base_url"] = table.get("base_url", "").rstrip("/")
    if table.get("kind") != "local" and not _http_url(table["base_url"]):
        raise ConfigError(
            f"{where}: 'base_url' must be an http:// or https:// URL with a host, "
            f"such as http://localhost:8000/v1 (got {table['base_url']!r})"
        )
    _check_numbers(
        where,
        table,
        integers=("max_concurrency", "min_concurrency", "prompt_cache_slots"),
        numbers=("timeout_seconds", "rpm", "tpm"),
    )
    if not isinstance(table.get("adaptive", True), bool):
        raise ConfigError(f"{where}: 'adaptive' must be true or false")
    floor, cap = table.get("min_concurrency"), table.get("max_concurrency")
    if floor is not None and cap is not None and floor > cap:
        raise ConfigError(f"{where}: 'min_concurrency' ({floor}) must not exceed 'max_concurrency' ({cap})")
    return UpstreamConfig(**table)


def _http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises for a port that is not a number
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _limits(index: int, table: Any, path: Path) -> ModelLimits:
    where = f"config file {path}, limits #{index}"
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table")
    unknown = set(table) - {f.name for f in dataclasses.fields(ModelLimits)}
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    if not isinstance(table.get("model"), str) or not table["model"]:
        raise ConfigError(f"{where}: 'model' is required: a glob pattern of the models it limits")
    _check_numbers(where, table, integers=("max_concurrency",), numbers=("rpm", "tpm"))
    return ModelLimits(**table)


def _check_numbers(where: str, table: dict, integers: tuple[str, ...], numbers: tuple[str, ...]) -> None:
    for key in integers:
        value = table.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            raise ConfigError(f"{where}: '{key}' must be a positive integer")
    for key in numbers:
        value = table.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
            raise ConfigError(f"{where}: '{key}' must be a positive number")
