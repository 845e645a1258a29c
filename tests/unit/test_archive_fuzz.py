"""A pull applies a layer while it downloads, before its digest is checked, so the decoders
and the tar applier must take any bytes: every case below either succeeds or raises a
cargohold error (never another exception, never a hang), and staging is empty afterwards.

Inputs: random bytes, a valid layer (all entry kinds, sparse members) cut at many offsets,
with flipped bits, with header fields overwritten (checksum fixed, so the parser gets past
it) and PAX records holding hostile values; each plain and in gzip, zstd, bzip2 and xz.
`load` gets the same treatment of the image archive around the layer.
Seeds are fixed, so a failure reproduces; the case's name says how to rebuild it.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import json
import lzma
import os
import random
import signal
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zstandard
from registry_fake import FakeImage, FakeRegistry, digest_of, make_image
from tar_samples import file_size_limit, sample_layer, with_checksum
from test_archive_hostile import docker_archive
from test_registry_streaming import assert_clean, pull

from cargohold.config import Settings
from cargohold.engine import Engine
from cargohold.engine.images.requests import LoadRequest
from cargohold.engine.messages import discard
from cargohold.errors import CargoholdError
from cargohold.store.drivers.base import Layout
from cargohold.store.drivers.overlay import OverlayDriver
from cargohold.transport.local import stage_layer

CODECS: dict[str, Callable[[bytes], bytes]] = {
    "none": lambda data: data,
    "gzip": lambda data: gzip.compress(data, mtime=0),
    "zstd": lambda data: zstandard.ZstdCompressor().compress(data),
    "bzip2": bz2.compress,
    "xz": lzma.compress,
}
# ustar header fields worth breaking: name, mode, uid, gid, size, mtime, type, linkname,
# devmajor, devminor, prefix, and the old GNU sparse area (map, extension flag, real size)
FIELDS = [(0, 100), (100, 108), (108, 116), (116, 124), (124, 136), (136, 148), (156, 157),
          (157, 257), (329, 337), (337, 345), (345, 500), (386, 482), (482, 483), (483, 495)]
TYPES = b"0123457xgLKSVMN"
VALUES = ["1e30", "-1e30", "nan", "inf", "-5", "-1", str(2**40), str(2**64), "", "abc", "1.5",
          "4294967295", "0", "1,2", "0,10,20,5", "10,5,0,5", "a\x00b", "../../x", "/", "x" * 300]
KEYS = ["mtime", "uid", "gid", "size", "path", "linkpath", "uname", "atime", "GNU.sparse.size",
        "GNU.sparse.map", "GNU.sparse.numblocks", "GNU.sparse.offset", "GNU.sparse.numbytes",
        "GNU.sparse.realsize", "GNU.sparse.name", "SCHILY.xattr.user.a", "hdrcharset"]
SEED = 20_240_611
PER_CASE_SECONDS = 20


def _fill(rng: random.Random, n: int) -> bytes:
    kind = rng.randrange(5)
    if kind == 0:
        return rng.randbytes(n)
    if kind == 1:
        return bytes(rng.choice(b"01234567") for _ in range(n - 1)) + b"\0"
    if kind == 2:
        return b"\x80" + rng.randbytes(n - 1)  # GNU base-256, positive
    if kind == 3:
        return b"\xff" + rng.randbytes(n - 1)  # GNU base-256, negative
    return bytes(rng.choice(b"0123456789 \0") for _ in range(n))


def broken_header(rng: random.Random, tar: bytes) -> bytes:
    """``tar`` with fields of one header overwritten and its checksum made right again."""
    data = bytearray(tar)
    heads = [o for o in range(0, len(data) - 511, 512) if data[o + 257 : o + 262] == b"ustar"]
    at = rng.choice(heads)
    for _ in range(rng.randrange(1, 4)):
        start, stop = rng.choice(FIELDS)
        data[at + start : at + stop] = _fill(rng, stop - start)
    if rng.random() < 0.3:
        data[at + 156] = rng.choice(TYPES)
    return tar[:at] + with_checksum(data[at : at + 512]) + bytes(data[at + 512 :])


def hostile_pax(rng: random.Random) -> bytes:
    """A small archive whose PAX records hold values no sane archive has."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for _ in range(rng.randrange(1, 4)):
            info = tarfile.TarInfo(rng.choice(["a", "d/b", "c/../x", "./e", "d"]))
            info.type = rng.choice([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE,
                                    tarfile.LNKTYPE, tarfile.FIFOTYPE])
            info.linkname = rng.choice(["a", "", "../x", "d"])
            data = rng.randbytes(rng.randrange(2000)) if info.isreg() else b""
            info.pax_headers = {rng.choice(KEYS): rng.choice(VALUES)
                                for _ in range(rng.randrange(1, 5))}
            if rng.random() < 0.3:  # a GNU 1.0 sparse member with a garbage map
                info.pax_headers.update({"GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                                         "GNU.sparse.realsize": rng.choice(VALUES)})
                numbers = [rng.choice(["1", "2", "-1", "x", str(2**40)])] + \
                    [rng.choice(VALUES[:12]) for _ in range(rng.randrange(5))]
                data = "\n".join([*numbers, ""]).encode().ljust(512, b"\0") + data
            info.size = len(data)
            with contextlib.suppress(ValueError, UnicodeError):  # tarfile refuses to write
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def fuzz_cases() -> Iterator[tuple[str, bytes]]:
    layer = sample_layer()
    rng = random.Random(SEED)
    for size in (1, 511, 512, 513, 3000, 70_000):
        yield f"random {size} bytes", rng.randbytes(size)
    for codec, compress in CODECS.items():
        packed = compress(layer)
        cuts = sorted({*range(0, len(packed), max(1, len(packed) // 24)),
                       *(rng.randrange(len(packed)) for _ in range(8))})
        for cut in cuts:
            yield f"{codec} cut at {cut}", packed[:cut]
        for i in range(16):
            flipped = bytearray(packed)
            for _ in range(rng.randrange(1, 9)):
                flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
            yield f"{codec} bit flips #{i}", bytes(flipped)
        for i in range(12):
            yield f"{codec} broken header #{i}", compress(broken_header(rng, layer))
        yield f"{codec} random after the magic", packed[:6] + rng.randbytes(5000)
    for i in range(60):
        yield f"hostile pax #{i}", hostile_pax(rng)


@pytest.fixture(autouse=True)
def bounded_files() -> Iterator[None]:
    """Nothing here needs a big file: code that writes sparse holes out as zeros (the old
    applier) fails with EFBIG instead of filling the disk."""
    with file_size_limit(256 << 20):
        yield


class Hang(Exception):
    pass


@contextlib.contextmanager
def deadline(seconds: int) -> Iterator[None]:
    def expire(*_: object) -> None:
        raise Hang(f"no result after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return Engine(Settings(root=tmp_path / "root", runroot=tmp_path / "run",
                           storage_driver="vfs"))


def test_the_pull_path_takes_any_bytes(engine: Engine) -> None:
    """decompress -> tar apply (tar-split recorded) -> staging, as LocalDestination does."""
    stores = engine.stores
    tmp = engine.settings.root / "tmp"
    outcomes = {"applied": 0, "refused": 0}
    for name, data in fuzz_cases():
        try:
            with deadline(PER_CASE_SECONDS):
                staged = stage_layer(stores, io.BytesIO(data), None)
        except CargoholdError:
            outcomes["refused"] += 1
        except Hang:
            pytest.fail(f"{name}: hangs")
        except Exception as exc:
            pytest.fail(f"{name}: {type(exc).__name__}: {exc}")
        else:
            outcomes["applied"] += 1
            staged.discard()
        assert os.listdir(tmp) == [], f"{name}: staging left behind"
    assert engine.layers.list() == []
    assert outcomes["applied"] > 20 and outcomes["refused"] > 300, outcomes


def test_load_takes_any_image_archive(engine: Engine, tmp_path: Path) -> None:
    """`load` reads the outer archive's headers too: cut, flipped and mangled ones."""
    archive = docker_archive(tmp_path / "image.tar", sample_layer()).read_bytes()
    rng = random.Random(SEED + 1)
    cases = [(f"cut at {cut}", archive[:cut])
             for cut in range(0, len(archive), len(archive) // 40)]
    for i in range(20):
        flipped = bytearray(archive)
        for _ in range(rng.randrange(1, 9)):
            flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        cases.append((f"bit flips #{i}", bytes(flipped)))
    cases += [(f"broken header #{i}", broken_header(rng, archive)) for i in range(30)]
    path = tmp_path / "case.tar"
    tmp = engine.settings.root / "tmp"
    for name, data in cases:
        path.write_bytes(data)
        try:
            with deadline(PER_CASE_SECONDS), open(path, "rb") as stream:
                engine.images.load(LoadRequest(), stream, discard)
        except CargoholdError:
            assert engine.image_store.list() == [], f"{name}: an image was left"
        except Exception as exc:
            pytest.fail(f"{name}: {type(exc).__name__}: {exc}")
        else:
            for record in engine.image_store.list():
                engine.images.remove(record.id, force=True)
        assert not tmp.exists() or os.listdir(tmp) == [], f"{name}: staging left behind"


def _image_with_blob(blob: bytes) -> FakeImage:
    """An image whose second layer is ``blob``, listed with its right digest (so the pull's
    digest check passes and only the content can fail)."""
    img = make_image([{"etc/one": b"1" * 3000}, {"etc/x": b"x"}])
    manifest = json.loads(img.manifest)
    manifest["layers"][1].update(size=len(blob), digest=digest_of(blob))
    return FakeImage(json.dumps(manifest).encode(), img.config, [img.layers[0], blob])


@pytest.mark.parametrize("driver", ["vfs", "overlay"])
def test_a_streamed_pull_of_broken_layers_leaves_nothing(tmp_path: Path, driver: str) -> None:
    """The same through a real pull (download thread, pipe, decode thread), both drivers."""
    cases = [case for i, case in enumerate(fuzz_cases()) if i % 31 == 0]
    with contextlib.closing(FakeRegistry().start()) as fake:
        for n, (name, blob) in enumerate(cases):
            root = tmp_path / str(n) / "root"
            eng = Engine(Settings(root=root, runroot=tmp_path / "run", storage_driver="vfs"),
                         driver=OverlayDriver(Layout(root)) if driver == "overlay" else None)
            fake.add_image("x", str(n), _image_with_blob(blob))
            try:
                with deadline(PER_CASE_SECONDS):
                    pull(eng, fake, f"x:{n}")
            except CargoholdError:
                pass
            except Exception as exc:
                pytest.fail(f"{name}: {type(exc).__name__}: {exc}")
            else:
                pytest.fail(f"{name}: a layer whose diff_id cannot match was accepted")
            assert_clean(eng)
