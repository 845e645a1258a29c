"""HTTP plumbing shared by every client here (urllib3): bounded body reads and releases, and
plain downloads (import from a URL, ``ADD <url>``) with redirects followed by hand.

A peer decides how long its bodies are, so no body is read without a bound: an error body is
read up to ``ERROR_BODY_LIMIT`` for its message, documents (manifests, tokens, tag lists) up
to a limit of their own (``read_at_most``, an error past it), and a connection is kept for
reuse only when what is left of its body is small (``release``); otherwise it is closed.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import urljoin, urlsplit

from cargohold.errors import InvalidArgument, NotFound, Unavailable

if TYPE_CHECKING:
    import urllib3

ERROR_BODY_LIMIT = 64 << 10  # bytes of an error body read for its message
KEEP_LIMIT = 64 << 10  # at most this much of a body is drained to keep its connection
MAX_REDIRECTS = 5
REDIRECT_STATUS = frozenset((301, 302, 303, 307, 308))

_error_bodies: weakref.WeakKeyDictionary[urllib3.BaseHTTPResponse, bytes] = (
    weakref.WeakKeyDictionary())


def size_text(n: int) -> str:
    for unit, shift in (("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} bytes"


def read_at_most(resp: urllib3.BaseHTTPResponse, limit: int, what: str) -> bytes:
    """The whole body, refused (InvalidArgument naming ``what``) when longer than ``limit``."""
    data = resp.read(limit + 1)
    if len(data) > limit:
        raise InvalidArgument(f"{what}: the response is larger than {size_text(limit)}")
    return data


def error_body(resp: urllib3.BaseHTTPResponse) -> bytes:
    """The first ``ERROR_BODY_LIMIT`` bytes of an error response's body; read once, then the
    connection is released (or closed when more follows), so later calls get the same bytes."""
    body = _error_bodies.get(resp)
    if body is None:
        try:
            body = resp.read(ERROR_BODY_LIMIT)
        except Exception:  # a broken error body is no body: the status still speaks
            body = b""
        _error_bodies[resp] = body
        release(resp)
    return body


def release(resp: urllib3.BaseHTTPResponse) -> None:
    """Give the connection back for reuse when the body is read or what is left of it is
    known to be small; else close it (a peer could send gigabytes, or never stop)."""
    left = resp.length_remaining
    if (left is None and not resp.closed) or (left is not None and left > KEEP_LIMIT):
        close(resp)
        return
    with suppress(Exception):  # else the connection is dropped
        resp.drain_conn()  # reads at most ``left`` bytes
    resp.release_conn()


def close(resp: urllib3.BaseHTTPResponse) -> None:
    """Close the connection without reading any more of the body."""
    with suppress(Exception):
        resp.close()
    resp.release_conn()


def get(url: str, headers: dict[str, str] | None = None,
        timeout: float = 30.0) -> urllib3.BaseHTTPResponse:
    """``GET url``, retrying connection failures and following redirects by hand (their
    bodies are never read beyond ``KEEP_LIMIT``); errors name the URL."""
    import urllib3

    http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=timeout, read=timeout),
                               retries=urllib3.Retry(3, redirect=False))
    for _ in range(MAX_REDIRECTS + 1):
        if urlsplit(url).scheme not in ("http", "https"):
            raise InvalidArgument(f'Get "{url}": unsupported protocol scheme')
        try:
            resp = http.request("GET", url, headers=headers, preload_content=False,
                                redirect=False)
        except urllib3.exceptions.HTTPError as e:
            raise Unavailable(f'Get "{url}": {e}') from None
        location = resp.headers.get("Location")
        if resp.status not in REDIRECT_STATUS or not location:
            return resp
        release(resp)
        url = urljoin(url, location)
    raise Unavailable(f'Get "{url}": stopped after {MAX_REDIRECTS} redirects')


@contextmanager
def open_url(url: str, timeout: float = 30.0) -> Iterator[BinaryIO]:
    """Stream the body of ``url``; redirects are followed, errors name the URL."""
    resp = get(url, timeout=timeout)
    try:
        if resp.status == 404:
            raise NotFound(f"Get \"{url}\": 404 Not Found")
        if not 200 <= resp.status < 300:  # a 304 or 1xx has no body to take as content
            raise InvalidArgument(f"Get \"{url}\": unexpected status {resp.status}")
        yield resp  # type: ignore[misc]
    finally:
        release(resp)
