"""Plain HTTP(S) downloads (import from a URL, ADD <url>) through urllib3."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from cargohold.errors import InvalidArgument, NotFound, Unavailable


@contextmanager
def open_url(url: str, timeout: float = 30.0) -> Iterator[BinaryIO]:
    """Stream the body of ``url``; redirects are followed, errors name the URL."""
    import urllib3

    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=timeout, read=timeout), retries=urllib3.Retry(3, redirect=5)
    )
    try:
        resp = http.request("GET", url, preload_content=False)
    except urllib3.exceptions.HTTPError as e:
        raise Unavailable(f"Get \"{url}\": {e}") from None
    try:
        if resp.status == 404:
            raise NotFound(f"Get \"{url}\": 404 Not Found")
        if not 200 <= resp.status < 300:  # a 304 or 1xx has no body to take as content
            raise InvalidArgument(f"Get \"{url}\": unexpected status {resp.status}")
        yield resp  # type: ignore[misc]
    finally:
        resp.release_conn()
