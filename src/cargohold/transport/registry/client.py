"""One registry endpoint over HTTP (urllib3): auth, retries, manifests, blobs.

Semantics follow the OCI Distribution spec and Docker's client:

* ``GET /v2/`` first (ping); a 401 carries the ``WWW-Authenticate`` challenge.  ``Bearer``
  challenges get a token from the realm (Docker Hub's auth.docker.io flow, with Basic
  credentials when known) per scope; ``Basic`` challenges get the stored credentials.
* Transient failures (connection errors, 429, 500, 502, 503, 504) are retried with
  exponential backoff; ``Retry-After`` (seconds or an HTTP date) is honoured, capped.
* Credentials (a Bearer token or Basic) go only to the registry's own origin (scheme, host,
  port: the one that answered ``GET /v2/``), as distribution's endpoint authorizer does:
  every URL the registry hands us (upload ``Location``, tags ``Link: rel="next"``,
  redirects) that points elsewhere is requested without them, and a 401 challenge from
  elsewhere is not followed.  The token realm is the exception by design: it gets the
  Basic credentials wherever it is (Docker sends them to auth.docker.io, for example).
* Redirects are followed by hand (blob GETs go to S3-style storage).
* No body is read without a bound (``transport/http.py``): error bodies up to 64 KiB,
  manifests 4 MiB (Docker's limit), configs 8 MiB, tokens 1 MiB, tag lists 16 MiB a page.
* Blob downloads resume with ``Range`` after a dropped connection and are verified against
  their digest and size while they stream; a body that stalls (below ``min_speed`` over
  ``stall_timeout``) is aborted.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urlencode, urljoin, urlsplit

import msgspec

from cargohold.errors import CargoholdError, Forbidden, InvalidArgument, NotFound, Unavailable
from cargohold.oci import image as oci_image
from cargohold.transport.http import REDIRECT_STATUS, error_body, read_at_most, size_text
from cargohold.transport.http import close as _drop
from cargohold.transport.http import release as _discard
from cargohold.transport.registry.auth import Challenge, Credentials, parse_challenge
from cargohold.transport.registry.hosts import Endpoint

if TYPE_CHECKING:
    import urllib3

MANIFEST_ACCEPT = ", ".join((oci_image.OCI_INDEX, oci_image.DOCKER_MANIFEST_LIST,
                             oci_image.OCI_MANIFEST, oci_image.DOCKER_MANIFEST))
RETRY_STATUS = frozenset((408, 429, 500, 502, 503, 504))
MAX_MANIFEST = 4 << 20  # Docker's and distribution's limit
MAX_CONFIG = 8 << 20  # containers/image allows 4 MiB
MAX_TOKEN = 1 << 20
MAX_TAGS_PAGE = 16 << 20
MAX_TAGS = 64 << 20  # bytes of tag lists over all pages
MAX_DETAIL = 1024  # characters of a registry's error text shown
_READ = 1 << 20

Progress = Callable[[int], None]


class Sink(Protocol):
    """Where a blob download goes: a file, a buffer or a pipe."""

    def write(self, data: bytes, /) -> object: ...

    def tell(self) -> int: ...


class ClientOptions(msgspec.Struct, frozen=True):
    connect_timeout: float = 30.0
    read_timeout: float = 60.0
    retries: int = 4
    backoff: float = 0.5
    max_backoff: float = 10.0
    max_retry_after: float = 60.0
    stall_timeout: float = 60.0  # a body slower than min_speed over this long is aborted
    min_speed: int = 1024  # bytes per second
    max_redirects: int = 5
    chunk_size: int = 0  # upload PATCH size; 0 = one streamed PATCH per blob
    parallel: int = 3
    user_agent: str = "cargohold/0.1"


class _Stalled(Exception):
    pass


def error_detail(resp: urllib3.BaseHTTPResponse) -> str:
    """Docker's rendering of a registry error body: ``manifest unknown: manifest unknown``
    (from its first 64 KiB, cut to ``MAX_DETAIL`` characters)."""
    try:
        body = json.loads(error_body(resp) or b"{}")
        errors = body.get("errors") or []
        parts = []
        for e in errors:
            code = str(e.get("code", "")).lower().replace("_", " ")
            msg = str(e.get("message", ""))
            parts.append(f"{code}: {msg}" if code and msg else code or msg)
        if parts:
            text = "; ".join(parts)
            return text if len(text) <= MAX_DETAIL else text[:MAX_DETAIL] + "... (truncated)"
    except (ValueError, AttributeError, TypeError):
        pass
    return f"unexpected status {resp.status} {resp.reason or ''}".rstrip()


def _status_error(resp: urllib3.BaseHTTPResponse, what: str) -> CargoholdError:
    detail = error_detail(resp)
    if resp.status in (401, 403):
        return Forbidden(f"{what}: {detail}")
    if resp.status == 404:
        return NotFound(f"{what}: {detail}")
    if resp.status in RETRY_STATUS:
        return Unavailable(f"{what}: {detail}")
    return InvalidArgument(f"{what}: {detail}")


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of ``url``, normalised (case, default ports) as Go's URL
    comparison in distribution does; a URL that cannot be parsed has no origin."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or {"http": 80, "https": 443}.get(scheme, 0)
    except ValueError:
        return "", "", 0
    return scheme, parts.hostname or "", port


def _retry_after(resp: urllib3.BaseHTTPResponse) -> float | None:
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _describe(exc: BaseException) -> str:
    text = str(exc)
    reason = getattr(exc, "reason", None)
    if reason is not None and str(reason):
        text = str(reason)
    return text.split(": ", 1)[-1] if "Failed to establish" in text else text


class RegistryClient:
    """A client for one endpoint of one registry; safe to share between threads."""

    def __init__(self, registry: str, endpoint: Endpoint, credentials: Credentials | None = None,
                 options: ClientOptions | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.registry = registry
        self.endpoint = endpoint
        self.base = endpoint.url
        self.creds = credentials
        self.opts = options or ClientOptions()
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, ...], str] = {}
        self._challenge: Challenge | None = None
        self._pinged = False
        self._pool = self._make_pool(endpoint.tls_verify, endpoint.ca_files)
        self._foreign: urllib3.PoolManager | None = None

    # ---- plumbing ------------------------------------------------------------------------
    def _make_pool(self, verify: bool, ca_files: tuple[str, ...]) -> urllib3.PoolManager:
        import urllib3

        kw: dict[str, Any] = {
            "num_pools": 8,
            "maxsize": max(4, self.opts.parallel + 2),
            "timeout": urllib3.Timeout(connect=self.opts.connect_timeout,
                                       read=self.opts.read_timeout),
            "retries": False,
            "headers": {"User-Agent": self.opts.user_agent},
        }
        if not verify:
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
            kw["cert_reqs"] = "CERT_NONE"
        elif ca_files:
            ctx = ssl.create_default_context()
            for f in ca_files:
                ctx.load_verify_locations(cafile=f)
            kw["ssl_context"] = ctx
        return urllib3.PoolManager(**kw)

    def _pool_for(self, url: str) -> urllib3.PoolManager:
        """The endpoint's pool (its TLS settings) for its own host and port, else one that
        verifies certificates against the system's CAs."""
        if origin(url)[1:] == origin(self.base)[1:]:
            return self._pool
        with self._lock:
            if self._foreign is None:
                self._foreign = self._make_pool(True, ())
            return self._foreign

    def authorizes(self, url: str) -> bool:
        """Whether a request to ``url`` may carry the registry's credentials: only when it
        goes to the origin the challenge came from (the registry's, after ``ping``)."""
        return origin(url) == origin(self.base)

    def close(self) -> None:
        self._pool.clear()
        if self._foreign is not None:
            self._foreign.clear()

    def _backoff(self, attempt: int) -> float:
        return float(min(self.opts.max_backoff, self.opts.backoff * (2 ** attempt)))

    def _send(self, method: str, url: str, headers: dict[str, str], body: Any = None,
              follow: bool = False, retry: bool = True
              ) -> tuple[urllib3.BaseHTTPResponse, str]:
        """One request with retries on transient failures and manual redirects; returns the
        response and the URL that gave it.  A redirect away from the registry's origin drops
        ``Authorization`` for good; an error body is read (64 KiB at most) and released."""
        import urllib3

        replayable = retry and (body is None or isinstance(body, bytes | bytearray))
        attempt = redirects = 0
        while True:
            try:
                resp = self._pool_for(url).urlopen(
                    method, url, headers=headers, body=body, redirect=False, retries=False,
                    preload_content=False, chunked=not (body is None
                                                        or isinstance(body, bytes | bytearray)),
                )
            except urllib3.exceptions.SSLError as e:
                if "WRONG_VERSION_NUMBER" in str(e):
                    raise Unavailable(f'{method.capitalize()} "{url}": http: server gave HTTP '
                                      "response to HTTPS client") from None
                raise Unavailable(f'{method.capitalize()} "{url}": {_describe(e)}') from None
            except urllib3.exceptions.HTTPError as e:
                if replayable and attempt < self.opts.retries:
                    self._sleep(self._backoff(attempt))
                    attempt += 1
                    continue
                raise Unavailable(f'{method.capitalize()} "{url}": {_describe(e)}') from None
            if follow and resp.status in REDIRECT_STATUS and resp.headers.get("Location"):
                target = urljoin(url, resp.headers["Location"])
                _discard(resp)
                redirects += 1
                if redirects > self.opts.max_redirects:
                    raise Unavailable(f"{method} {url}: stopped after {redirects - 1} redirects")
                if not self.authorizes(target):  # never forward credentials elsewhere
                    headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
                url = target
                continue
            if resp.status in RETRY_STATUS and replayable and attempt < self.opts.retries:
                delay = _retry_after(resp)
                delay = self._backoff(attempt) if delay is None else min(
                    delay, self.opts.max_retry_after)
                _discard(resp)
                self._sleep(delay)
                attempt += 1
                continue
            if resp.status >= 300:
                error_body(resp)  # its first 64 KiB, kept for error_detail; the rest unread
            return resp, url

    def ping(self) -> None:
        """``GET /v2/``: checks the API version and learns the auth challenge."""
        if self._pinged:
            return
        try:
            resp, _ = self._send("GET", self.base + "/v2/", {})
        except Unavailable:
            if not (self.endpoint.http_fallback and self.base.startswith("https://")):
                raise
            self.base = "http://" + self.base.removeprefix("https://")
            resp, _ = self._send("GET", self.base + "/v2/", {})
        if resp.status == 401:
            self._challenge = parse_challenge(resp.headers.get("WWW-Authenticate", ""))
        elif resp.status >= 400:
            raise _status_error(resp, f"{self.registry}: ping {self.base}/v2/")
        _discard(resp)
        self._pinged = True

    def _auth_header(self, scopes: tuple[str, ...]) -> str | None:
        ch = self._challenge
        if ch is None:
            return None
        if ch.scheme == "basic":
            return self.creds.basic() if self.creds else None
        with self._lock:
            return self._tokens.get(scopes)

    def _fetch_token(self, scopes: tuple[str, ...]) -> str:
        """A token from the challenge's realm.  The realm gets the Basic credentials wherever
        it is (as Docker and distribution send them); it is only ever one the registry's own
        origin named (``request`` ignores challenges from elsewhere)."""
        ch = self._challenge
        assert ch is not None
        realm = ch.params.get("realm", "")
        if not realm.startswith(("http://", "https://")):
            raise Unavailable(f"{self.registry}: bad token realm {realm!r}")
        fields = [("service", ch.params["service"])] if ch.params.get("service") else []
        fields += [("scope", s) for s in scopes]
        if self.creds:
            fields.append(("account", self.creds.username))
        url = realm + ("&" if "?" in realm else "?") + urlencode(fields)
        headers = {"Authorization": self.creds.basic()} if self.creds else {}
        resp, _ = self._send("GET", url, headers)
        try:
            if resp.status in (401, 403):
                what = "incorrect username or password" if self.creds else "authentication required"
                raise Forbidden(f"Get \"{realm}\": unauthorized: {what}")
            if resp.status != 200:
                raise _status_error(resp, f"Get \"{realm}\"")
            data = json.loads(read_at_most(resp, MAX_TOKEN, f"token from \"{realm}\"") or b"{}")
        except ValueError:
            raise Unavailable(f"Get \"{realm}\": invalid token response") from None
        finally:
            _discard(resp)
        token = data.get("token") if isinstance(data, dict) else None
        token = token or (data.get("access_token") if isinstance(data, dict) else None)
        if not isinstance(token, str) or not token:
            raise Unavailable(f"Get \"{realm}\": no token in the response")
        return "Bearer " + token

    def request(self, method: str, path: str, scopes: tuple[str, ...],
                headers: dict[str, str] | None = None, body: Any = None,
                follow: bool = False, retry: bool = True) -> urllib3.BaseHTTPResponse:
        """A request, authenticated when it goes to the registry's origin (one re-try after
        a 401 from there with fresh credentials); a URL elsewhere goes without credentials."""
        self.ping()
        url = path if path.startswith(("http://", "https://")) else self.base + path
        own = self.authorizes(url)
        refreshed = False
        while True:
            h = dict(headers or {})
            auth = self._auth_header(scopes) if own else None
            if own and auth is None and self._challenge and self._challenge.scheme == "bearer":
                auth = self._refresh(scopes)
                refreshed = True
            if auth:
                h["Authorization"] = auth
            resp, answered = self._send(method, url, h, body, follow, retry)
            if resp.status != 401 or refreshed or not (own and self.authorizes(answered)) or not (
                    body is None or isinstance(body, bytes)):
                return resp
            challenge = parse_challenge(resp.headers.get("WWW-Authenticate", ""))
            if challenge is None or (challenge.scheme == "basic" and not self.creds):
                return resp
            _discard(resp)
            self._challenge = challenge
            refreshed = True
            if challenge.scheme == "bearer":
                self._refresh(scopes)

    def _refresh(self, scopes: tuple[str, ...]) -> str:
        token = self._fetch_token(scopes)
        with self._lock:
            self._tokens[scopes] = token
        return token

    def check_login(self) -> None:
        """Prove the credentials against ``/v2/`` (``docker login``)."""
        self.ping()
        if self._challenge is None:
            return
        if self._challenge.scheme == "bearer":
            self._refresh(())
        resp = self.request("GET", "/v2/", ())
        try:
            if resp.status in (401, 403):
                raise Forbidden(f"login attempt to {self.base}/v2/ failed with status: "
                                f"{resp.status} {resp.reason or ''}".rstrip())
            if resp.status >= 400:
                raise _status_error(resp, f"login to {self.base}/v2/")
        finally:
            _discard(resp)

    # ---- manifests and tags --------------------------------------------------------------
    @staticmethod
    def scope(repo: str, push: bool = False) -> tuple[str, ...]:
        return (f"repository:{repo}:{'pull,push' if push else 'pull'}",)

    def get_manifest(self, repo: str, reference: str, display: str,
                     name: str) -> tuple[bytes, str, str]:
        """(bytes, media type, digest) of a manifest or index; errors in Docker's words."""
        resp = self.request("GET", f"/v2/{repo}/manifests/{reference}", self.scope(repo),
                            {"Accept": MANIFEST_ACCEPT})
        try:
            if resp.status == 404:
                raise NotFound(f"manifest for {display} not found: {error_detail(resp)}")
            if resp.status in (401, 403):
                raise Forbidden(f"pull access denied for {name}, repository does not exist or "
                                f"may require 'docker login': {error_detail(resp)}")
            if resp.status != 200:
                raise _status_error(resp, f"manifest for {display}")
            data = read_at_most(resp, MAX_MANIFEST, f"manifest for {display}")
        finally:
            _discard(resp)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise InvalidArgument(f"manifest for {display}: digest mismatch: got {digest}")
        media = (resp.headers.get("Content-Type") or "").split(";")[0].strip()
        sniffed = oci_image.sniff_media_type(data)
        if not media or media in ("application/json", "text/plain") or sniffed in (
                oci_image.SCHEMA1_TYPES):
            media = sniffed
        return data, media, digest

    def manifest_exists(self, repo: str, reference: str) -> str | None:
        """The digest of ``reference`` when the registry has it (HEAD)."""
        resp = self.request("HEAD", f"/v2/{repo}/manifests/{reference}",
                            self.scope(repo, push=True), {"Accept": MANIFEST_ACCEPT})
        _discard(resp)
        return resp.headers.get("Docker-Content-Digest") if resp.status == 200 else None

    def put_manifest(self, repo: str, reference: str, data: bytes, media_type: str) -> str:
        resp = self.request("PUT", f"/v2/{repo}/manifests/{reference}",
                            self.scope(repo, push=True), {"Content-Type": media_type}, data)
        try:
            if resp.status not in (200, 201, 202):
                raise _status_error(resp, f"put manifest {repo}:{reference}")
        finally:
            _discard(resp)
        return "sha256:" + hashlib.sha256(data).hexdigest()

    def list_tags(self, repo: str, display: str) -> list[str]:
        """Every tag, over the ``Link: rel="next"`` pages (at most ``MAX_TAGS`` bytes in all;
        a page link seen before ends the listing with an error rather than looping)."""
        self.ping()  # settles ``base`` (https, or http after a fallback)
        tags: list[str] = []
        url: str | None = f"{self.base}/v2/{repo}/tags/list"
        seen: set[str] = set()
        budget = MAX_TAGS
        while url:
            if url in seen:
                raise InvalidArgument(f"tags of {display}: the registry's pages loop")
            seen.add(url)
            resp = self.request("GET", url, self.scope(repo))
            try:
                if resp.status in (401, 403, 404):
                    raise (NotFound if resp.status == 404 else Forbidden)(
                        f"tags of {display}: {error_detail(resp)}")
                if resp.status != 200:
                    raise _status_error(resp, f"tags of {display}")
                data = read_at_most(resp, min(MAX_TAGS_PAGE, budget), f"tags of {display}")
                body = json.loads(data or b"{}")
                page = (body.get("tags") or []) if isinstance(body, dict) else None
                if not isinstance(page, list):
                    raise ValueError("not a list")
            except ValueError:
                raise InvalidArgument(f"tags of {display}: invalid response") from None
            finally:
                _discard(resp)
            budget -= len(data)
            tags += [str(t) for t in page]
            url = _next_link(resp.headers.get("Link", ""), url)
        return tags

    # ---- blobs: download -----------------------------------------------------------------
    def fetch_blob(self, repo: str, digest: str, size: int | None, out: Sink,
                   progress: Progress | None = None) -> None:
        """Stream a blob into ``out`` (from its start), verified; resumes with Range.

        ``out`` only ever receives the blob's bytes in order, once each (a server that
        ignores Range has the bytes already written skipped), so it may be a pipe; the
        caller must not trust them before this returns.
        """
        import urllib3

        what = f"blob {digest}"
        hasher = hashlib.sha256()
        written = 0
        attempt = 0
        while True:
            headers = {"Range": f"bytes={written}-"} if written else {}
            resp = self.request("GET", f"/v2/{repo}/blobs/{digest}", self.scope(repo), headers,
                                follow=True)
            skip = 0
            try:
                if written and resp.status == 200:  # the server ignored Range: skip ahead
                    skip = written
                elif resp.status != (206 if written else 200):
                    raise _status_error(resp, f"fetching {what}")
                elif written and not (resp.headers.get("Content-Range") or "").startswith(
                        f"bytes {written}-"):
                    raise Unavailable(f"fetching {what}: bad Content-Range "
                                      f"{resp.headers.get('Content-Range')!r} for offset {written}")
                written = self._stream_body(resp, out, hasher, written, size, what, progress,
                                            skip)
            except (urllib3.exceptions.HTTPError, _Stalled, OSError) as e:
                _drop(resp)  # never drain a broken or endless body
                written = out.tell()  # what reached ``out`` (and the hasher) before the fault
                if isinstance(e, _Stalled | urllib3.exceptions.TimeoutError):
                    reason = f"timeout: {e}" if str(e) else "timeout"
                else:
                    reason = _describe(e)
                if attempt >= self.opts.retries:
                    raise Unavailable(f"fetching {what}: {reason} (after {attempt + 1} "
                                      "attempts)") from None
                self._sleep(self._backoff(attempt))
                attempt += 1
                continue
            except BaseException:
                _drop(resp)
                raise
            _discard(resp)
            break
        if size is not None and written != size:
            raise InvalidArgument(f"{what}: size mismatch: got {written} bytes, expected {size}")
        got = "sha256:" + hasher.hexdigest()
        if got != digest:
            raise InvalidArgument(f"{what}: digest mismatch: got {got}")

    def _stream_body(self, resp: urllib3.BaseHTTPResponse, out: Sink, hasher: Any,
                     written: int, size: int | None, what: str, progress: Progress | None,
                     skip: int = 0) -> int:
        """Copy the body to ``out``; returns the new offset.  The first ``skip`` bytes of the
        body (already written by an earlier attempt) are dropped.  Time spent blocked in
        ``out.write`` (a pipe whose reader is busy) does not count as a stall."""
        window_start, window_bytes = time.monotonic(), 0
        seen = 0
        while True:
            chunk = resp.read1(_READ)  # type: ignore[attr-defined]
            if not chunk:
                return written
            window_bytes += len(chunk)
            if seen < skip:
                drop = min(len(chunk), skip - seen)
                seen += drop
                chunk = chunk[drop:]
            if chunk:
                hasher.update(chunk)
                if size is not None and written + len(chunk) > size:
                    raise InvalidArgument(f"{what}: size mismatch: more than the expected {size} "
                                          "bytes")
                before = time.monotonic()
                out.write(chunk)
                window_start += time.monotonic() - before
                written += len(chunk)
                if progress is not None:
                    progress(written)
            now = time.monotonic()
            if now - window_start >= self.opts.stall_timeout:
                if window_bytes < self.opts.min_speed * (now - window_start):
                    raise _Stalled(f"less than {self.opts.min_speed} bytes/s for "
                                   f"{self.opts.stall_timeout:g}s")
                window_start, window_bytes = now, 0

    def get_blob_bytes(self, repo: str, digest: str, size: int,
                       limit: int = MAX_CONFIG) -> bytes:
        """A small blob (an image config) in memory: its descriptor's ``size`` bounds what is
        read (``fetch_blob`` refuses more), and that size must be within ``limit``."""
        import io

        if not 0 <= size <= limit:
            raise InvalidArgument(f"blob {digest}: {size} bytes is larger than the "
                                  f"{size_text(limit)} limit")
        buf = io.BytesIO()
        self.fetch_blob(repo, digest, size, buf)
        return buf.getvalue()

    # ---- blobs: upload -------------------------------------------------------------------
    def blob_exists(self, repo: str, digest: str) -> bool:
        resp = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", self.scope(repo, push=True),
                            follow=True)
        _discard(resp)
        if resp.status in (200, 404):
            return resp.status == 200
        raise _status_error(resp, f"checking blob {digest}")

    def _start_upload(self, repo: str, query: str = "") -> tuple[urllib3.BaseHTTPResponse, str]:
        """``POST .../blobs/uploads/``: the answer and the URL it came from."""
        scopes = self.scope(repo, push=True)
        if "from=" in query:
            src = query.split("from=", 1)[1].split("&", 1)[0]
            from urllib.parse import unquote

            scopes = (*scopes, f"repository:{unquote(src)}:pull")
        self.ping()  # settles ``base``
        url = f"{self.base}/v2/{repo}/blobs/uploads/{query}"
        resp = self.request("POST", url, scopes, {"Content-Length": "0"}, b"")
        if resp.status not in (201, 202):
            _discard(resp)
            raise _status_error(resp, f"starting an upload to {repo}")
        return resp, url

    def _location(self, resp: urllib3.BaseHTTPResponse, repo: str, current: str) -> str:
        """Where the upload goes on: ``Location`` resolved against the URL that answered
        (``current``), as distribution's client does; ``request`` decides on credentials."""
        loc = resp.headers.get("Location")
        _discard(resp)
        if not loc:
            raise Unavailable(f"upload to {repo}: the registry sent no Location")
        return urljoin(current, loc)

    def _begin_upload(self, repo: str) -> str:
        resp, url = self._start_upload(repo)
        return self._location(resp, repo, url)

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        """Cross-repository mount; False when the registry asks for an upload instead."""
        query = f"?mount={quote(digest)}&from={quote(from_repo, safe='')}"
        resp, url = self._start_upload(repo, query)
        if resp.status == 201:
            _discard(resp)
            return True
        self._cancel(self._location(resp, repo, url), repo)
        return False

    def _cancel(self, location: str, repo: str) -> None:
        with contextlib.suppress(CargoholdError):
            _discard(self.request("DELETE", location, self.scope(repo, push=True)))

    def put_blob(self, repo: str, data: bytes, digest: str) -> None:
        """Monolithic upload: POST, then one PUT with the whole body."""
        location = self._begin_upload(repo)
        url = _with_query(location, {"digest": digest})
        resp = self.request("PUT", url, self.scope(repo, push=True),
                            {"Content-Type": "application/octet-stream"}, data)
        try:
            if resp.status not in (201, 204):
                raise _status_error(resp, f"uploading blob {digest}")
        finally:
            _discard(resp)

    def upload_stream(self, repo: str, chunks: Iterable[bytes], what: str) -> tuple[str, int]:
        """Chunked upload of a stream whose digest is learnt on the way: PATCH(es), then PUT.

        With ``chunk_size`` 0 the whole stream goes in one streamed PATCH (as Docker does);
        otherwise each PATCH carries ``chunk_size`` bytes with its ``Content-Range``.
        """
        hasher = hashlib.sha256()
        total = 0
        location = self._begin_upload(repo)
        scopes = self.scope(repo, push=True)

        def counted(source: Iterable[bytes]) -> Iterable[bytes]:
            nonlocal total
            for c in source:
                hasher.update(c)
                total += len(c)
                yield c

        try:
            if self.opts.chunk_size <= 0:
                resp = self.request("PATCH", location, scopes,
                                    {"Content-Type": "application/octet-stream"},
                                    counted(chunks), retry=False)
                location = self._patched(resp, repo, what, location)
            else:
                for piece in _rechunk(counted(chunks), self.opts.chunk_size):
                    start = total - len(piece)
                    resp = self.request("PATCH", location, scopes, {
                        "Content-Type": "application/octet-stream",
                        "Content-Range": f"{start}-{total - 1}",
                        "Content-Length": str(len(piece))}, piece)
                    location = self._patched(resp, repo, what, location)
            digest = "sha256:" + hasher.hexdigest()
            resp = self.request("PUT", _with_query(location, {"digest": digest}), scopes,
                                {"Content-Length": "0"}, b"")
            try:
                if resp.status not in (201, 204):
                    raise _status_error(resp, f"uploading {what}")
            finally:
                _discard(resp)
        except BaseException:
            self._cancel(location, repo)
            raise
        return digest, total

    def _patched(self, resp: urllib3.BaseHTTPResponse, repo: str, what: str,
                 current: str) -> str:
        if resp.status != 202:
            _discard(resp)
            raise _status_error(resp, f"uploading {what}")
        return self._location(resp, repo, current)


def _rechunk(chunks: Iterable[bytes], size: int) -> Iterable[bytes]:
    buf = bytearray()
    for c in chunks:
        buf += c
        while len(buf) >= size:
            yield bytes(buf[:size])
            del buf[:size]
    if buf:
        yield bytes(buf)


def _with_query(url: str, params: dict[str, str]) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(params)


def _next_link(header: str, current: str) -> str | None:
    for part in header.split(","):
        if 'rel="next"' in part and "<" in part and ">" in part:
            return urljoin(current, part[part.index("<") + 1 : part.index(">")])
    return None
