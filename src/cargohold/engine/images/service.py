"""Image service: list, tag, remove, inspect, history, prune, import, save, load.

Import and load read the stream their caller opened (a file, stdin, a request body) and
report Docker's JSON messages to the call's sink; save writes to the caller's descriptor.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, BinaryIO

from cargohold.errors import Conflict, InvalidArgument, NotFound
from cargohold.oci import image as oci_image
from cargohold.oci.reference import parse_reference
from cargohold.util.ids import short_id

if TYPE_CHECKING:
    from cargohold.engine import Engine
    from cargohold.engine.images.analysis import ImageAnalysis
    from cargohold.engine.images.requests import ImportRequest, LoadRequest, SaveRequest
    from cargohold.engine.reports import DiskUsage, HistoryRow, ImageSummary, Removal
    from cargohold.store.images import ImageRecord
    from cargohold.transport.registry.events import MessageSink


class ImageService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.store = engine.image_store

    # ---- lookups -------------------------------------------------------------------------
    def resolve(self, name: str) -> ImageRecord:
        """Find an image by reference (normalised as Docker does), digest, id or id prefix."""
        candidates = [name]
        try:
            ref = parse_reference(name)
            candidates.insert(0, str(ref.with_default_tag() if not ref.digest else ref))
        except InvalidArgument:
            pass
        for candidate in candidates:
            try:
                return self.store.resolve(candidate)
            except NotFound:
                continue
        raise NotFound(f"No such image: {name}")

    def config(self, record: ImageRecord) -> dict[str, Any]:
        """The image's config.  Configs are checked when they enter the store; one stored
        before that (or under an older schema) is checked here, so every reader (create,
        inspect, history, build's FROM) gets an error naming the field instead of failing on
        it later (a checked one costs nothing)."""
        config = self.store.config(record.id)
        if record.schema < oci_image.CONFIG_SCHEMA_VERSION:
            import msgspec

            from cargohold.oci.schema import check_image_config

            check_image_config(msgspec.json.encode(config))
        return config

    def emit(self, actor: str, name: str, action: str, image_id: str = "") -> None:
        """``image <action>`` into the shared event log, with the labels of ``image_id``
        (container/events.py; moby: ``name`` is the tag for tag, the id for most)."""
        from cargohold.container.events import image_event

        labels: dict[str, str] = {}
        if image_id:
            import contextlib

            with contextlib.suppress(NotFound, OSError, ValueError):
                labels = (self.store.config(image_id).get("config") or {}).get("Labels") or {}
        image_event(self.engine.settings.runroot, actor, name, action, labels)

    def size(self, record: ImageRecord) -> int:
        if record.size or record.top_layer is None:
            return record.size
        return sum(layer.size for layer in self.engine.layers.chain(record.top_layer))

    # ---- images --------------------------------------------------------------------------
    def summaries(
        self, show_all: bool = False, filters: list[str] | None = None
    ) -> list[ImageSummary]:
        """One row per tag (untagged images once); reads only the image index unless a
        label filter needs the configs."""
        preds = _parse_filters(filters or [])
        need_labels = any(f.strip().lower().startswith("label") for f in filters or [])
        rows: list[ImageSummary] = []
        for record in self.store.list():
            labels: dict[str, str] = {}
            if need_labels:
                labels = (self.config(record).get("config") or {}).get("Labels") or {}
            created = record.config_created or record.created
            rows += _summaries(record, created, self.size(record), labels)
        rows = [r for r in rows if all(p(r) for p in preds)]
        rows.sort(key=lambda r: (r.created, r.repository, r.tag), reverse=True)
        return rows

    def tag(self, source: str, target: str) -> None:
        record = self.resolve(source)
        ref = parse_reference(target)
        if ref.digest:
            raise InvalidArgument("refusing to create a tag with a digest reference")
        self.store.tag(record.id, str(ref.with_default_tag()))
        self.emit(record.id, ref.with_default_tag().familiar(), "tag", record.id)

    def inspect(self, name: str) -> dict[str, Any]:
        record = self.resolve(name)
        return oci_image.docker_inspect_image(
            image_id=record.id,
            repo_tags=record.repo_tags,
            repo_digests=record.repo_digests,
            config=self.config(record),
            size=self.size(record),
            graph_driver=self.engine.driver.name,
        )

    def history(self, name: str) -> list[HistoryRow]:
        from cargohold.engine.reports import HistoryRow

        record = self.resolve(name)
        config = self.config(record)
        sizes = []
        if record.top_layer is not None:
            sizes = [layer.size for layer in self.engine.layers.chain(record.top_layer)]
        rows = []
        layer_index = 0
        for entry in config.get("history") or []:
            size = 0
            if not entry.get("empty_layer"):
                size = sizes[layer_index] if layer_index < len(sizes) else 0
                layer_index += 1
            rows.append(
                HistoryRow(
                    id="<missing>",
                    created=entry.get("created", ""),
                    created_by=entry.get("created_by", ""),
                    size=size,
                    comment=entry.get("comment", ""),
                )
            )
        rows.reverse()
        if rows:
            top = rows[0]
            rows[0] = HistoryRow(record.id, top.created, top.created_by, top.size, top.comment)
        return rows

    def analyze(self, name: str) -> ImageAnalysis:
        """``image analyze``: per-layer changes and wasted bytes (engine/image_analysis.py)."""
        from cargohold.engine.images.analysis import analyze

        return analyze(self.engine, name)

    # ---- removal -------------------------------------------------------------------------
    def remove(self, name: str, force: bool = False) -> list[Removal]:
        from cargohold.engine.reports import Removal

        record = self.resolve(name)
        by_reference = _is_reference_to(record, name)
        users = self.engine.containers_using_image(record.id)
        running = [cid for cid, is_running in users if is_running]
        if by_reference:
            ref = str(parse_reference(name).with_default_tag())
            if ref not in record.repo_tags and ref not in record.repo_digests:
                ref = next(t for t in record.repo_tags if parse_reference(t).familiar() == name)
            if len(record.repo_tags) + len(record.repo_digests) > 1 or (users and force):
                self.store.untag(ref)
                self.emit(record.id, record.id, "untag", record.id)
                return [Removal("Untagged", parse_reference(ref).familiar())]
            if users:
                raise Conflict(
                    f'conflict: unable to remove repository reference "{name}" (must force) - '
                    f"container {short_id(users[0][0])} is using its referenced image "
                    f"{short_id(record.id)}"
                )
        else:
            if running:
                raise Conflict(
                    f"conflict: unable to delete {short_id(record.id)} (cannot be forced) - "
                    f"image is being used by running container {short_id(running[0])}"
                )
            if users and not force:
                raise Conflict(
                    f"conflict: unable to delete {short_id(record.id)} (must be forced) - "
                    f"image is being used by stopped container {short_id(users[0][0])}"
                )
            if len(record.repo_tags) > 1 and not force:
                raise Conflict(
                    f"conflict: unable to delete {short_id(record.id)} (must be forced) - "
                    "image is referenced in multiple repositories"
                )
        report = [Removal("Untagged", parse_reference(t).familiar()) for t in record.repo_tags]
        report += [Removal("Untagged", parse_reference(d).familiar()) for d in record.repo_digests]
        for ref in [*record.repo_tags, *record.repo_digests]:
            self.store.untag(ref)
            self.emit(record.id, record.id, "untag", record.id)
        if users:
            return report  # forced: the image stays for its containers, now untagged
        return report + self._delete(record)

    def _delete(self, record: ImageRecord) -> list[Removal]:
        from cargohold.engine.reports import Removal

        self.store.delete(record.id)
        self.emit(record.id, record.id, "delete")  # no labels: the image is gone (moby)
        report = [Removal("Deleted", record.id)]
        return report + self._release_layers(record.top_layer)

    def _release_layers(self, top: str | None) -> list[Removal]:
        """Delete the layers of a removed image that nothing else uses, top first."""
        from cargohold.engine.reports import Removal

        if top is None:
            return []
        in_use: set[str] = set()
        for other in self.store.list():
            if other.top_layer:
                in_use.update(layer.chain_id for layer in self.engine.layers.chain(other.top_layer))
        report = []
        for layer in reversed(self.engine.layers.chain(top)):
            if layer.chain_id in in_use:
                break
            try:
                self.engine.layers.delete(layer.chain_id)
            except Conflict:
                break  # a container's rw layer or another layer builds on it
            if self.engine.blobs.has(layer.diff_id) and not any(
                other.diff_id == layer.diff_id for other in self.engine.layers.list()
            ):
                self.engine.blobs.delete(layer.diff_id)  # tar kept by older versions
            report.append(Removal("Deleted", layer.chain_id))
        return report

    def prune(self, all_images: bool = False, filters: Sequence[str] = ()
              ) -> tuple[list[Removal], int]:
        """Remove dangling (``all_images``: unused) images matching ``filters``."""
        from cargohold.engine.prune_filters import PruneFilters, created_seconds
        from cargohold.engine.reports import Removal

        wanted = PruneFilters.parse(filters)
        report: list[Removal] = []
        reclaimed = 0
        for record in self.store.list():
            if record.repo_tags and not all_images:
                continue
            if self.engine.containers_using_image(record.id):
                continue
            if not wanted.empty:
                labels = (self.config(record).get("config") or {}).get("Labels") or {}
                created = created_seconds(record.config_created or record.created)
                if not wanted.match(labels, created):
                    continue
            size = self.size(record)
            for ref in [*record.repo_tags, *record.repo_digests]:
                self.store.untag(ref)
                self.emit(record.id, record.id, "untag", record.id)
                report.append(Removal("untagged", parse_reference(ref).familiar()))
            deleted = self._delete(record)
            reclaimed += size if len(deleted) > 1 else 0
            report += [Removal(r.action.lower(), r.subject) for r in deleted]
        from cargohold.container.events import prune_event

        prune_event(self.engine.settings.runroot, "image", reclaimed)
        return report, reclaimed

    def disk_usage(self) -> DiskUsage:
        from cargohold.engine.reports import DiskUsage

        records = self.store.list()
        active_layers: set[str] = set()
        active = 0
        for record in records:
            if record.top_layer and self.engine.containers_using_image(record.id):
                active += 1
                active_layers.update(c.chain_id for c in self.engine.layers.chain(record.top_layer))
        layers = self.engine.layers.list()
        size = sum(layer.size for layer in layers)
        used = sum(layer.size for layer in layers if layer.chain_id in active_layers)
        return DiskUsage("Images", len(records), active, size, size - used)

    # ---- import / save / load ------------------------------------------------------------
    def import_image(self, request: ImportRequest, events: MessageSink,
                     stream: BinaryIO | None = None) -> str:
        """``docker import`` (``POST /images/create?fromSrc=``): the tarball from ``stream``,
        else from the http(s) URL ``request.from_src``; the last message is the image id."""
        from cargohold.engine.messages import reporting_errors
        from cargohold.transport.registry.events import status

        with reporting_errors(events):
            image_id = self._import(request, stream)
            events(status(image_id))
            return image_id

    def _import(self, request: ImportRequest, stream: BinaryIO | None) -> str:
        from cargohold.transport.local import register_layer

        target = None
        if request.repo:
            ref = parse_reference(request.repo)
            target = str((ref.with_tag(request.tag) if request.tag else ref).with_default_tag())
        # validate before reading any input
        section = oci_image.apply_changes({}, list(request.changes))
        from cargohold.oci.image import parse_platform

        platform = parse_platform(request.platform)  # the image's os/arch; else this machine's
        source = request.from_src
        with _import_source(source, stream) as raw:
            layer = register_layer(self.engine.stores, raw, None)
        created = oci_image.rfc3339_nano()
        config = oci_image.new_config(
            config=section,
            diff_ids=[layer.diff_id],
            history=[
                oci_image.history_entry(
                    created=created, comment=request.message or f"Imported from {source}"
                )
            ],
            created=created,
            platform=platform,
        )
        record = self.store.add(oci_image.encode_json(config), layer.chain_id, size=layer.size)
        if target:
            self.store.tag(record.id, target)
            self.emit(record.id, parse_reference(target).familiar(), "tag", record.id)
        self.emit(record.id, record.id, "import", record.id)
        return record.id

    def import_tarball(self, source: str, reference: str | None, changes: Sequence[str] = (),
                       message: str = "", platform: str | None = None) -> str:
        """``import_image`` from a tarball file or URL named by ``source`` (for callers that
        hold a path, as tests do); ``-`` is refused: stdin is the caller's to open."""
        from cargohold.engine.images.requests import ImportRequest
        from cargohold.engine.messages import discard

        request = ImportRequest(from_src=source, repo=reference or "", message=message,
                                changes=tuple(changes), platform=platform or "")
        if source == "-" or source.startswith(("http://", "https://")):
            return self.import_image(request, discard)
        with open_input(source, tarball=True) as f:
            return self.import_image(request, discard, f)

    def save(self, request: SaveRequest, fd: int) -> None:
        """``docker save`` (``GET /images/get?names=``): the archive, written to ``fd``."""
        from cargohold.transport.docker_archive import write_archive
        from cargohold.transport.local import LocalSource

        selected: dict[str, tuple[ImageRecord, list[str]]] = {}
        for name in request.names:
            record = self.resolve(name)
            entry = selected.setdefault(record.id, (record, []))
            if _is_reference_to(record, name):
                ref = str(parse_reference(name).with_default_tag())
                if ref in record.repo_tags and ref not in entry[1]:
                    entry[1].append(ref)
        source = LocalSource(
            self.engine.stores, [(rec, tuple(tags)) for rec, tags in selected.values()]
        )
        write_archive(fd, source.images(), source)
        for image_id in selected:
            self.emit(image_id, image_id, "save", image_id)

    def load(self, request: LoadRequest, stream: BinaryIO, events: MessageSink) -> list[str]:
        """``docker load`` (``POST /images/load``) from ``stream`` (spooled to a temporary
        file when it cannot seek); per image ``{"stream":"Loaded image: centos:7\\n"}``.
        Returns those lines."""
        from cargohold.engine.messages import reporting_errors
        from cargohold.transport.registry.events import stream as stream_message

        with reporting_errors(events):
            lines = self._load(stream)
            for line in lines:
                events(stream_message(line + "\n"))
            return lines

    def _load(self, stream: BinaryIO) -> list[str]:
        from cargohold.transport.copy import copy_images
        from cargohold.transport.docker_archive import DockerArchiveSource
        from cargohold.transport.local import LocalDestination

        with _seekable(stream, self.engine.settings.root / "tmp") as f:
            source = DockerArchiveSource(f)
            copied = copy_images(source, LocalDestination(self.engine.stores))
        lines = []
        for item in copied:
            self.emit(item.image_id, item.image_id, "load", item.image_id)
            if item.names:
                lines += [f"Loaded image: {parse_reference(n).familiar()}" for n in item.names]
            else:
                lines.append(f"Loaded image ID: {item.image_id}")
        return lines


def _summaries(
    record: ImageRecord, created: str, size: int, labels: dict[str, str]
) -> list[ImageSummary]:
    from cargohold.engine.reports import ImageSummary

    digests = {parse_reference(d).name_familiar: d.split("@", 1)[1] for d in record.repo_digests}
    out = []
    for tag in record.repo_tags:
        ref = parse_reference(tag)
        repo = ref.name_familiar
        out.append(
            ImageSummary(
                record.id,
                repo,
                ref.tag or "<none>",
                digests.pop(repo, "<none>"),
                created,
                size,
                labels,
                False,
            )
        )
    for repo, digest in digests.items():
        out.append(ImageSummary(record.id, repo, "<none>", digest, created, size, labels, False))
    if not out:
        out.append(
            ImageSummary(record.id, "<none>", "<none>", "<none>", created, size, labels, True)
        )
    return out


Predicate = Callable[["ImageSummary"], bool]


def _dangling_pred(want: bool) -> Predicate:
    return lambda r: r.dangling == want


def _reference_pred(pattern: str) -> Predicate:
    return lambda r: _reference_matches(r, pattern)


def _label_pred(value: str) -> Predicate:
    key, has_value, wanted = value.partition("=")
    return lambda r: key in r.labels and (not has_value or r.labels[key] == wanted)


def _parse_filters(filters: list[str]) -> list[Predicate]:
    preds: list[Predicate] = []
    for f in filters:
        key, sep, value = f.partition("=")
        key = key.strip().lower()
        if not sep and key != "label":
            raise InvalidArgument(f"bad format of filter (expected name=value): {f}")
        if key == "dangling":
            if value.lower() not in ("true", "false", "1", "0"):
                raise InvalidArgument(f"Invalid filter 'dangling={value}'")
            preds.append(_dangling_pred(value.lower() in ("true", "1")))
        elif key == "reference":
            preds.append(_reference_pred(value))
        elif key == "label":
            preds.append(_label_pred(value))
        else:
            raise InvalidArgument(f"Invalid filter '{key}'")
    return preds


def _reference_matches(row: ImageSummary, pattern: str) -> bool:
    if row.repository == "<none>":
        return False
    if ":" in pattern.rsplit("/", 1)[-1]:
        return fnmatch.fnmatchcase(f"{row.repository}:{row.tag}", pattern)
    return fnmatch.fnmatchcase(row.repository, pattern)


def _is_reference_to(record: ImageRecord, name: str) -> bool:
    """True when ``name`` names ``record`` by a tag or digest (not by id)."""
    try:
        ref = parse_reference(name)
    except InvalidArgument:
        return False
    full = str(ref.with_default_tag())
    known = (*record.repo_tags, *record.repo_digests)
    return full in known or str(ref) in known


@contextmanager
def open_input(path: str, tarball: bool = False) -> Iterator[BinaryIO]:
    """A file the user named for load/import, with Docker's words when it cannot be read."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise NotFound(f"open {path}: no such file or directory") from None
    except IsADirectoryError:
        if not tarball:
            raise
        raise InvalidArgument(f"{path} is a directory, not a tarball") from None
    with f:
        yield f


@contextmanager
def _import_source(source: str, stream: BinaryIO | None) -> Iterator[BinaryIO]:
    if stream is not None:
        yield stream
        return
    if not source.startswith(("http://", "https://")):
        raise InvalidArgument(f"import from {source!r}: no tarball given (the source is "
                              "the call's stream, or an http(s) URL)")
    from cargohold.transport.http import open_url

    with open_url(source) as f:
        yield f


@contextmanager
def _seekable(stream: BinaryIO, tmp_dir: os.PathLike[str]) -> Iterator[BinaryIO]:
    """The archive as a seekable file: ``stream`` itself, or spooled to a temp file."""
    try:
        stream.seek(0, os.SEEK_CUR)
        stream.fileno()  # the archive reader reads by descriptor (pread)
        yield stream
        return
    except (OSError, ValueError, AttributeError):
        pass
    os.makedirs(tmp_dir, exist_ok=True)
    import tempfile

    with tempfile.TemporaryFile(dir=tmp_dir) as spool:
        while chunk := stream.read(1 << 20):
            spool.write(chunk)
        spool.flush()
        spool.seek(0)
        yield spool  # type: ignore[misc]
