"""batchgate.upstream.router and HttpUpstream.url_for: routing body.model to an upstream, without network."""

from __future__ import annotations

import orjson
import pytest

from batchgate.domain.lines import ENDPOINTS
from batchgate.domain.results import result_line
from batchgate.errors import ConfigError
from batchgate.settings import Settings, UpstreamConfig
from batchgate.upstream.base import NO_CACHE, SHARED_CACHE, PrefixCache
from batchgate.upstream.engines import resolve_model
from batchgate.upstream.http import HttpUpstream
from batchgate.upstream.local import LocalUpstream
from batchgate.upstream.router import KINDS, Router


def settings(*upstreams: tuple[str, list[str]], **extra) -> Settings:
    return Settings(
        upstreams=tuple(
            UpstreamConfig(name=name, base_url=f"http://{name}.invalid/v1", models=tuple(models), **extra)
            for name, models in upstreams
        )
    )


@pytest.fixture
async def router_factory():
    made: list[Router] = []

    def make(s: Settings) -> Router:
        router = Router(s)
        made.append(router)
        return router

    yield make
    for router in made:
        await router.close()


def name_of(upstream) -> str | None:
    return None if upstream is None else upstream.name


async def test_first_matching_upstream_in_config_order(router_factory):
    router = router_factory(settings(("special", ["llama-3-70b"]), ("llamas", ["llama-*"]), ("rest", ["*"])))
    assert name_of(router.route("llama-3-70b")) == "special"
    assert name_of(router.route("llama-3-8b")) == "llamas"
    assert name_of(router.route("gpt-4o")) == "rest"


async def test_catch_all_first_shadows_the_rest(router_factory):
    router = router_factory(settings(("all", ["*"]), ("llamas", ["llama-*"])))
    assert name_of(router.route("llama-3")) == "all"


@pytest.mark.parametrize(
    "model, expected",
    [
        ("gpt-4o", "openai"),
        ("gpt-4o-mini", "openai"),
        ("o1", "reasoning"),
        ("o3", "reasoning"),
        ("qwen2.5-7b", "local"),
        ("mistral-7b", "local"),
        ("Qwen/Qwen2-7B", "hf"),
        ("mixtral", None),
        ("gpt4", None),
        ("o10", None),
        ("", None),
    ],
)
async def test_glob_patterns(router_factory, model, expected):
    router = router_factory(
        settings(("openai", ["gpt-*"]), ("reasoning", ["o[0-9]"]), ("local", ["qwen*", "mistral-?b"]), ("hf", ["*/*"]))
    )
    assert name_of(router.route(model)) == expected


async def test_no_upstreams_routes_nothing(router_factory):
    assert router_factory(Settings()).route("anything") is None


async def test_route_returns_http_upstreams(router_factory):
    router = router_factory(settings(("a", ["*"])))
    assert isinstance(router.route("m"), HttpUpstream)


async def test_send_for_unroutable_model_is_model_not_found(router_factory):
    router = router_factory(settings(("llamas", ["llama-*"])))
    outcome = await router.send("/v1/chat/completions", {"model": "gpt-4o", "messages": []})
    assert outcome.error_code == "model_not_found"
    assert outcome.status_code is None and not outcome.ok
    assert "'gpt-4o'" in outcome.error_message
    assert "[[upstreams]]" in outcome.error_message
    line = orjson.loads(result_line("batch_req_1", "c1", outcome))
    assert line["response"] is None and line["error"]["code"] == "model_not_found"


async def test_send_with_no_upstreams_is_model_not_found(router_factory):
    outcome = await router_factory(Settings()).send("/v1/embeddings", {"model": "bge"})
    assert outcome.error_code == "model_not_found"


def test_unknown_kind_is_a_config_error():
    with pytest.raises(ConfigError) as info:
        Router(Settings(upstreams=(UpstreamConfig(name="weird", base_url="http://x", kind="grpc"),)))
    assert "'weird'" in info.value.message
    assert "'grpc'" in info.value.message
    for kind in KINDS:
        assert kind in info.value.message


# --- HttpUpstream.url_for ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "base_url, endpoint, url",
    [
        ("http://10.0.0.5:8000/v1", "/v1/chat/completions", "http://10.0.0.5:8000/v1/chat/completions"),
        ("http://10.0.0.5:8000/v1", "/v1/responses", "http://10.0.0.5:8000/v1/responses"),
        ("http://10.0.0.5:8000/v1", "/v1/embeddings", "http://10.0.0.5:8000/v1/embeddings"),
        ("http://10.0.0.5:8000/v1", "/v1/images/generations", "http://10.0.0.5:8000/v1/images/generations"),
        (
            "https://api.example.com/openai/v1",
            "/v1/chat/completions",
            "https://api.example.com/openai/v1/chat/completions",
        ),
        ("http://localhost:11434/api", "/v1/embeddings", "http://localhost:11434/api/embeddings"),
    ],
)
def test_url_for(base_url, endpoint, url):
    upstream = HttpUpstream(UpstreamConfig(name="u", base_url=base_url), Settings())
    assert upstream.url_for(endpoint) == url


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_url_for_from_a_config_file_with_trailing_slash(tmp_path, endpoint):
    path = tmp_path / "c.toml"
    path.write_text('[[upstreams]]\nname = "u"\nbase_url = "http://gpu:8000/v1/"\n')
    loaded = Settings.load({"config": str(path)}, {})
    upstream = HttpUpstream(loaded.upstreams[0], loaded)
    assert upstream.url_for(endpoint) == "http://gpu:8000/v1" + endpoint.removeprefix("/v1")
    assert "//" not in upstream.url_for(endpoint).removeprefix("http://")


# --- the built-in local models ------------------------------------------------------------------------------


async def test_no_upstreams_means_the_local_upstream_serves_the_builtin_models(router_factory):
    router = router_factory(Settings())
    assert isinstance(router.route("smollm2-135m-instruct"), LocalUpstream)
    assert router.route("multilingual-e5-small") is router.route("smollm2-135m-instruct")
    assert router.route("gpt-4o") is None


async def test_configured_upstreams_replace_the_default_local_one(router_factory):
    router = router_factory(settings(("llamas", ["llama-*"])))
    assert router.route("smollm2-135m-instruct") is None


async def test_local_is_a_kind_beside_remote_upstreams(router_factory):
    local = UpstreamConfig(name="builtin", kind="local", models=("smollm2-*", "multilingual-*"))
    remote = UpstreamConfig(name="remote", base_url="http://remote.invalid/v1", models=("*",))
    router = router_factory(Settings(upstreams=(local, remote)))
    assert isinstance(router.route("smollm2-135m-instruct"), LocalUpstream)
    assert isinstance(router.route("gpt-4o"), HttpUpstream)


@pytest.mark.parametrize(
    "endpoint, model",
    [
        ("/v1/chat/completions", "smollm2-135m-instruct"),
        ("/v1/responses", "smollm2-135m-instruct"),
        ("/v1/embeddings", "multilingual-e5-small"),
    ],
)
def test_auto_is_the_local_default_of_the_endpoint(endpoint, model):
    body = {"model": "auto", "input": "x"}
    assert resolve_model(endpoint, body) == {"model": model, "input": "x"}
    assert body["model"] == "auto"  # the caller's body is left alone


def test_auto_has_no_image_model_and_other_names_pass_unchanged():
    assert resolve_model("/v1/images/generations", {"model": "auto"}) == {"model": "auto"}
    assert resolve_model("/v1/embeddings", {"model": "bge-m3"}) == {"model": "bge-m3"}


async def test_auto_on_images_is_model_not_found_with_a_reason(router_factory):
    outcome = await router_factory(Settings()).send("/v1/images/generations", {"model": "auto", "prompt": "a cat"})
    assert outcome.error_code == "model_not_found" and outcome.status_code is None
    assert "no local model" in outcome.error_message and "/v1/images/generations" in outcome.error_message


async def test_a_local_model_on_an_endpoint_it_does_not_serve_is_model_not_found(router_factory):
    router = router_factory(Settings())
    outcome = await router.send("/v1/chat/completions", {"model": "multilingual-e5-small", "messages": []})
    assert outcome.error_code == "model_not_found"
    assert "'smollm2-135m-instruct'" in outcome.error_message  # it names the model that would serve


async def test_a_local_upstream_with_a_name_no_engine_has_is_model_not_found(router_factory):
    router = router_factory(Settings(upstreams=(UpstreamConfig(name="builtin", kind="local", models=("*",)),)))
    outcome = await router.send("/v1/embeddings", {"model": "bge-m3", "input": "x"})
    assert outcome.error_code == "model_not_found" and "'bge-m3' is not a built-in local model" in outcome.error_message


async def test_a_pool_names_its_prefix_cache_shared_per_slot_or_none(router_factory):
    served = router_factory(settings(("vllm", ["*"])))
    assert served.prefix_cache("/v1/chat/completions", "m") == SHARED_CACHE
    assert served.prefix_cache("/v1/chat/completions", None) == SHARED_CACHE, "a mix of models is taken as shared"
    llama = router_factory(Settings(upstreams=(UpstreamConfig("l", "http://l/v1", prompt_cache_slots=4),)))
    assert llama.prefix_cache("/v1/chat/completions", "m") == PrefixCache(4), "a llama.cpp server, said so"
    built_in = router_factory(Settings(local_chat_slots=3))  # llama.cpp: a prompt cache per slot
    assert built_in.prefix_cache("/v1/chat/completions", "auto") == PrefixCache(3)
    assert built_in.prefix_cache("/v1/responses", "smollm2-135m-instruct") == PrefixCache(3)
    assert built_in.prefix_cache("/v1/embeddings", "auto") == NO_CACHE, "the embedding model keeps none"
    assert built_in.prefix_cache("/v1/chat/completions", "not-served") == NO_CACHE
