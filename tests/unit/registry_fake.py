"""A small in-process registry (http.server in a thread) that misbehaves on request.

Serves one repository's manifests and blobs; ``faults[digest]`` picks a misbehaviour for a
blob: "drop" (connection dropped half way, once), "digest" (other bytes, same length),
"size" (more bytes than the descriptor), "500" (two 500s, then the blob), "429" (one 429 with
Retry-After: 2), "slow" (a byte now and then, forever), "silent" (headers, then nothing),
"redirect" (307 to ``redirect_to``), "norange" (ignores Range).

Pushes work too (uploads, cross-repository mounts, manifest PUTs); ``upload_base`` makes the
upload ``Location`` an absolute URL on another server, and ``tags_page``/``link_base`` split
the tag list into pages whose ``Link: rel="next"`` may point elsewhere.  Two instances that
share ``manifests``/``blobs``/``uploads`` (``FakeRegistry.sharing``) act as one registry on two
origins.  ``huge[path]`` = (status, size, chunked) answers ``path`` with a body of ``size``
bytes, made as it is sent (a 3xx redirects to ``redirect_to``); ``sent[path]`` counts the
bytes that reached the socket.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import socket
import tarfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class FakeImage:
    manifest: bytes
    config: bytes
    layers: list[bytes]  # compressed blobs

    @property
    def manifest_digest(self) -> str:
        return digest_of(self.manifest)


def make_layer(files: dict[str, bytes]) -> tuple[bytes, str]:
    """(gzip blob, diff_id) of a tar holding ``files``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tf.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    return gzip.compress(raw, mtime=0), digest_of(raw)


def make_image(layers: list[dict[str, bytes]], media: str = "docker") -> FakeImage:
    blobs, diff_ids = [], []
    for files in layers:
        blob, diff_id = make_layer(files)
        blobs.append(blob)
        diff_ids.append(diff_id)
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    docker = media == "docker"
    manifest = {
        "schemaVersion": 2,
        "mediaType": ("application/vnd.docker.distribution.manifest.v2+json" if docker
                      else "application/vnd.oci.image.manifest.v1+json"),
        "config": {"mediaType": ("application/vnd.docker.container.image.v1+json" if docker
                                 else "application/vnd.oci.image.config.v1+json"),
                   "size": len(config), "digest": digest_of(config)},
        "layers": [{"mediaType": ("application/vnd.docker.image.rootfs.diff.tar.gzip" if docker
                                  else "application/vnd.oci.image.layer.v1.tar+gzip"),
                    "size": len(b), "digest": digest_of(b)} for b in blobs],
    }
    return FakeImage(json.dumps(manifest).encode(), config, blobs)


@dataclass
class FakeRegistry:
    manifests: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # ref -> (body, type)
    blobs: dict[str, bytes] = field(default_factory=dict)
    faults: dict[str, str] = field(default_factory=dict)
    token_auth: tuple[str, str] | None = None  # (user, password) for a Bearer token flow
    redirect_to: str = ""
    uploads: dict[str, bytearray] = field(default_factory=dict)
    upload_base: str = ""  # absolute upload Locations on this server ("" = relative)
    tags_page: int = 0  # tags per page (0 = all in one)
    link_base: str = ""  # the next page's Link goes to this server ("" = relative)
    tags_link: str = ""  # a Link header sent with every tags page, as it is
    huge: dict[str, tuple[int, int, bool]] = field(default_factory=dict)
    sent: dict[str, int] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    hits: dict[str, int] = field(default_factory=dict)
    server: ThreadingHTTPServer | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add_image(self, repo: str, tag: str, img: FakeImage, media: str | None = None) -> None:
        mt = media or json.loads(img.manifest)["mediaType"]
        self.manifests[f"{repo}:{tag}"] = (img.manifest, mt)
        self.manifests[f"{repo}:{img.manifest_digest}"] = (img.manifest, mt)
        self.blobs[digest_of(img.config)] = img.config
        for b in img.layers:
            self.blobs[digest_of(b)] = b

    def sharing(self) -> FakeRegistry:
        """Another server (its own port, no auth) over the same content."""
        return FakeRegistry(manifests=self.manifests, blobs=self.blobs, uploads=self.uploads)

    def start(self) -> FakeRegistry:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_HEAD(self) -> None:
                fake.handle(self, head=True)

            def do_GET(self) -> None:
                fake.handle(self, head=False)

            def do_POST(self) -> None:
                fake.handle(self, head=False)

            def do_PATCH(self) -> None:
                fake.handle(self, head=False)

            def do_PUT(self) -> None:
                fake.handle(self, head=False)

            def do_DELETE(self) -> None:
                fake.handle(self, head=False)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def close(self) -> None:
        self.stop.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    # ---- request handling ----------------------------------------------------------------
    def handle(self, h: BaseHTTPRequestHandler, head: bool) -> None:
        headers = {k.lower(): v for k, v in h.headers.items()}
        self.requests.append((h.command, h.path, headers))
        path = h.path.split("?", 1)[0]
        body = _read_body(h, headers) if h.command in ("POST", "PATCH", "PUT") else b""
        if path in self.huge:
            return self._huge(h, path)
        if path == "/token":
            return self._token(h, headers)
        if self.token_auth and headers.get("authorization") != "Bearer good-token":
            realm = f'Bearer realm="{self.url}/token",service="fake"'
            return _send(h, 401, b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication '
                         b'required"}]}', {"WWW-Authenticate": realm}, head)
        if path == "/v2/":
            return _send(h, 200, b"{}", {}, head)
        if "/blobs/uploads/" in path:
            return self._upload(h, path, body)
        parts = path[len("/v2/"):].rsplit("/", 2)
        if len(parts) != 3:
            return _send(h, 404, b"", {}, head)
        repo, kind, ref = parts
        if kind == "tags" and ref == "list":
            return self._tags(h, repo)
        if kind == "manifests" and h.command == "PUT":
            mt = headers.get("content-type", "")
            self.manifests[f"{repo}:{ref}"] = self.manifests[f"{repo}:{digest_of(body)}"] = (
                body, mt)
            return _send(h, 201, b"", {"Docker-Content-Digest": digest_of(body)}, False)
        if kind == "manifests":
            found = self.manifests.get(f"{repo}:{ref}")
            if found is None:
                body = b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}'
                return _send(h, 404, body, {}, head)
            return _send(h, 200, found[0], {"Content-Type": found[1],
                                            "Docker-Content-Digest": digest_of(found[0])}, head)
        if kind == "blobs":
            return self._blob(h, ref, headers, head)
        return _send(h, 404, b"", {}, head)

    def _upload(self, h: BaseHTTPRequestHandler, path: str, body: bytes) -> None:
        from urllib.parse import parse_qs, urlsplit

        query = parse_qs(urlsplit(h.path).query)
        repo = path[len("/v2/"):].split("/blobs/uploads/", 1)[0]
        if h.command == "POST":
            mount = (query.get("mount") or [""])[0]
            if mount and mount in self.blobs:
                return _send(h, 201, b"", {"Docker-Content-Digest": mount}, False)
            uid = uuid.uuid4().hex
            self.uploads[uid] = bytearray()
            return _send(h, 202, b"", {"Location": self._upload_url(repo, uid)}, False)
        uid = path.rsplit("/", 1)[-1]
        data = self.uploads.get(uid)
        if data is None:
            return _send(h, 404, b'{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN","message":"blob '
                         b'upload unknown"}]}', {}, False)
        if h.command == "DELETE":
            del self.uploads[uid]
            return _send(h, 204, b"", {}, False)
        data += body
        if h.command == "PATCH":
            return _send(h, 202, b"", {"Location": self._upload_url(repo, uid),
                                       "Range": f"0-{max(0, len(data) - 1)}"}, False)
        digest = (query.get("digest") or [""])[0]
        if digest != digest_of(bytes(data)):
            return _send(h, 400, b'{"errors":[{"code":"DIGEST_INVALID","message":"digest did '
                         b'not match"}]}', {}, False)
        del self.uploads[uid]
        self.blobs[digest] = bytes(data)
        return _send(h, 201, b"", {"Docker-Content-Digest": digest}, False)

    def _upload_url(self, repo: str, uid: str) -> str:
        return f"{self.upload_base}/v2/{repo}/blobs/uploads/{uid}"

    def _tags(self, h: BaseHTTPRequestHandler, repo: str) -> None:
        from urllib.parse import parse_qs, urlsplit

        tags = sorted(k.split(":", 1)[1] for k in self.manifests
                      if k.startswith(repo + ":") and not k.split(":", 1)[1].startswith("sha"))
        last = (parse_qs(urlsplit(h.path).query).get("last") or [""])[0]
        tags = [t for t in tags if t > last]
        extra = {}
        if self.tags_page and len(tags) > self.tags_page:
            tags = tags[: self.tags_page]
            extra["Link"] = (f'<{self.link_base}/v2/{repo}/tags/list?n={self.tags_page}'
                             f'&last={tags[-1]}>; rel="next"')
        if self.tags_link:
            extra["Link"] = self.tags_link
        body = json.dumps({"name": repo, "tags": tags}).encode()
        return _send(h, 200, body, extra, False)

    def _huge(self, h: BaseHTTPRequestHandler, path: str) -> None:
        """A body of ``size`` bytes made as it goes; counts what the socket accepted."""
        status, size, chunked = self.huge[path]
        start, block = b'{"errors":[', b" " * (64 << 10)  # an error list that never ends
        h.send_response(status)
        if chunked:
            h.send_header("Transfer-Encoding", "chunked")
        else:
            h.send_header("Content-Length", str(size))
        if 300 <= status < 400:
            h.send_header("Location", self.redirect_to)
        h.end_headers()
        self.sent[path] = 0
        try:
            while self.sent[path] < size and not self.stop.is_set():
                piece = (start if not self.sent[path] else block)[: size - self.sent[path]]
                if chunked:
                    h.wfile.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
                else:
                    h.wfile.write(piece)
                self.sent[path] += len(piece)
            if chunked:
                h.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass
        h.close_connection = True

    def _token(self, h: BaseHTTPRequestHandler, headers: dict[str, str]) -> None:
        import base64

        assert self.token_auth is not None
        want = "Basic " + base64.b64encode(":".join(self.token_auth).encode()).decode()
        if headers.get("authorization") != want:
            return _send(h, 401, b'{"details":"incorrect username or password"}', {}, False)
        return _send(h, 200, b'{"token":"good-token"}', {}, False)

    def _blob(self, h: BaseHTTPRequestHandler, digest: str, headers: dict[str, str],
              head: bool) -> None:
        data = self.blobs.get(digest)
        if data is None:
            return _send(h, 404, b'{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}',
                         {}, head)
        n = self.hits[digest] = self.hits.get(digest, 0) + 1
        fault = self.faults.get(digest, "")
        if fault == "redirect":
            return _send(h, 307, b"", {"Location": f"{self.redirect_to}/blob/{digest}"}, head)
        if fault == "500" and n <= 2:
            return _send(h, 500, b"oops", {}, head)
        if fault == "429" and n == 1:
            return _send(h, 429, b"slow down", {"Retry-After": "2"}, head)
        if fault == "digest":
            data = bytes(b ^ 0xFF for b in data[:8]) + data[8:]
        if fault == "size":
            data = data + b"extra bytes"
        start = 0
        rng = headers.get("range", "")
        if rng.startswith("bytes=") and "norange" not in fault:
            start = int(rng[6:].split("-")[0])
        status = 206 if start else 200
        extra = {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"} if start else {}
        body = data[start:]
        if "drop" in fault and n == 1:
            return _drop(h, body, extra)
        if fault in ("slow", "silent"):
            return self._trickle(h, body, fault)
        return _send(h, status, body, extra, head)

    def _trickle(self, h: BaseHTTPRequestHandler, body: bytes, fault: str) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.flush()
        try:
            for i in range(len(body)):
                if self.stop.wait(0.1):
                    break
                if fault == "slow":
                    h.wfile.write(body[i : i + 1])
                    h.wfile.flush()
        except OSError:
            pass
        h.close_connection = True


def _read_body(h: BaseHTTPRequestHandler, headers: dict[str, str]) -> bytes:
    if "content-length" in headers:
        return h.rfile.read(int(headers["content-length"]))
    if headers.get("transfer-encoding", "").lower() != "chunked":
        return b""
    out = bytearray()
    while True:
        size = int(h.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while h.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return bytes(out)
        out += h.rfile.read(size)
        h.rfile.readline()


def _send(h: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str],
          head: bool) -> None:
    h.send_response(status)
    h.send_header("Content-Length", str(len(body)))
    for k, v in headers.items():
        h.send_header(k, v)
    h.end_headers()
    if not head:
        h.wfile.write(body)


def _drop(h: BaseHTTPRequestHandler, body: bytes, headers: dict[str, str]) -> None:
    h.send_response(200)
    h.send_header("Content-Length", str(len(body)))
    for k, v in headers.items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(body[: len(body) // 2])
    h.wfile.flush()
    time.sleep(0.05)
    h.connection.shutdown(socket.SHUT_RDWR)
    h.close_connection = True


class RedirectTarget:
    """Another "host" (localhost instead of 127.0.0.1) serving blobs a registry redirects to."""

    def __init__(self, blobs: dict[str, bytes]) -> None:
        self.blobs = blobs
        self.seen: list[dict[str, str]] = []
        target = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                target.seen.append({k.lower(): v for k, v in self.headers.items()})
                data = target.blobs.get(self.path.rsplit("/", 1)[-1])
                _send(self, 200 if data is not None else 404, data or b"", {}, False)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://localhost:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
