"""Which endpoint a file of request lines is for, read from the `url` its lines name."""

from __future__ import annotations

from pathlib import Path

import orjson

from batchgate.cli.client import EXIT_USAGE
from batchgate.errors import CommandFailed


def urls_named(path: Path, enough: int = 2) -> list[str]:
    """The distinct `url`s of the file's lines in the order met, reading no further once `enough` are found."""
    urls: list[str] = []
    with path.open("rb") as lines:
        for raw in lines:
            url = _url_of(raw)
            if url is not None and url not in urls:
                urls.append(url)
                if len(urls) >= enough:
                    break
    return urls


def infer_endpoint(path: Path) -> str:
    """The one `url` every line names; none or several is a usage error that asks for --endpoint."""
    urls = urls_named(path)
    if len(urls) > 1:
        raise CommandFailed(
            f"the lines of {path} name more than one url ({urls[0]}, {urls[1]}); "
            "a batch has one endpoint: pass --endpoint",
            EXIT_USAGE,
        )
    if not urls:
        raise CommandFailed(f"no line of {path} names a 'url', so its endpoint is unknown: pass --endpoint", EXIT_USAGE)
    return urls[0]


def _url_of(raw: bytes) -> str | None:
    if raw.isspace():
        return None
    try:
        url = orjson.loads(raw).get("url")
    except (orjson.JSONDecodeError, AttributeError):
        return None  # not a request line: validation reports it
    return url if isinstance(url, str) else None
