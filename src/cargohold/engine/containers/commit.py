"""``commit``: one new layer from the container's upper dir on top of its image.

The diff is written from the rw layer's upper directory (never a walk of the merged tree)
while the container is paused (``-p``, the default), and streamed into ``register_layer`` like
any other layer (its tar-split lets ``save``/``push`` reproduce the tar; no copy is kept).
The config is Docker's: the container's Config with the ``-c`` changes applied, parent
history plus one entry (created_by = the container's Cmd), ``author``, ``comment``,
``container`` and ``container_config``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from cargohold.errors import InvalidArgument, NotFound
from cargohold.oci import image as oci_image

if TYPE_CHECKING:
    from cargohold.container.model import ContainerRecord
    from cargohold.engine import Engine
    from cargohold.store.layers import Layer


def commit_target(reference: str | None, changes: Sequence[str]) -> str | None:
    """The tag a commit gets (None: untagged), checked with the ``--change`` lines before any
    work is done."""
    from cargohold.oci.reference import parse_reference

    target = None
    if reference:
        parsed = parse_reference(reference)
        if parsed.digest:
            raise InvalidArgument("refusing to create a tag with a digest reference")
        target = str(parsed.with_default_tag())
    oci_image.apply_changes({}, changes)  # bad change lines fail before any work
    return target


def commit_container(
    engine: Engine,
    record: ContainerRecord,
    target: str | None,
    *,
    pause: Callable[[], Callable[[], None]],
    config_of: Callable[[ContainerRecord], dict[str, Any]],
    author: str = "",
    message: str = "",
    changes: Sequence[str] = (),
) -> str:
    """A new image of ``record``'s image plus one layer of its changes, tagged ``target``
    (:func:`commit_target`).  ``pause`` pauses the container (as ``commit -p`` asked) and
    returns the function that resumes it; ``config_of`` gives Docker's ContainerConfig of
    a record."""
    layer_id = record.layer_id or record.id
    layers = engine.layers
    parent = layers.rw_parent(layer_id)
    try:
        parent_config = engine.image_store.config(record.image_id) if record.image_id else {}
    except NotFound:
        parent_config = {}
    resume = pause()
    try:
        layer = _register_diff(engine, layer_id, parent, resume)
    finally:
        resume()
    container_config = config_of(record)
    config = _image_config(parent_config, container_config, changes)
    created = oci_image.rfc3339_nano()
    diff_ids = list((parent_config.get("rootfs") or {}).get("diff_ids") or [])
    if not diff_ids and parent is not None:
        diff_ids = [ly.diff_id for ly in layers.chain(parent)]
    history = [dict(h) for h in parent_config.get("history") or [] if isinstance(h, dict)]
    cmd = record.config.cmd or ()
    history.append(oci_image.history_entry(" ".join(cmd), created=created, author=author,
                                           comment=message))  # fmt: skip
    image_config = oci_image.new_config(
        config=config,
        diff_ids=[*diff_ids, layer.diff_id],
        history=history,
        created=created,
        author=author,
        platform=_platform(parent_config),
        comment=message,
        container=record.id,
        container_config=container_config,
    )
    size = sum(ly.size for ly in layers.chain(layer.chain_id))
    image = engine.image_store.add(oci_image.encode_json(image_config), layer.chain_id, size=size)
    if target:
        engine.image_store.tag(image.id, target)
    _commit_events(engine, record, image.id, target, message, config.get("Labels") or {})
    return image.id


def _commit_events(
    engine: Engine, record: ContainerRecord, image_id: str, target: str | None, comment: str,
    labels: dict[str, str],
) -> None:  # fmt: skip
    """moby's order: ``image tag`` (when tagged), then ``container commit``."""
    from cargohold.container import events
    from cargohold.oci.reference import familiar

    runroot = engine.settings.runroot
    ref = familiar(target) if target else ""
    if ref:
        events.image_event(runroot, image_id, ref, "tag", labels)
    extra = {"comment": comment, "imageID": image_id, "imageRef": ref}
    events.container_event(runroot, record, "commit", extra)


def _register_diff(
    engine: Engine, layer_id: str, parent: str | None, done_reading: Callable[[], None]
) -> Layer:
    """Stream the rw layer's diff straight into a new layer (no temporary copy: on this kind
    of host every freshly written page costs).  ``done_reading`` runs as soon as the whole
    diff has been read from the upper dir (it resumes a paused container)."""
    from cargohold.transport.local import register_layer

    r, w = os.pipe2(os.O_CLOEXEC)
    with contextlib.suppress(OSError):
        fcntl.fcntl(w, 1031, 1 << 20)  # F_SETPIPE_SZ: fewer wake-ups
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            with open(w, "wb", buffering=1 << 20) as out:
                engine.layers.rw_diff(layer_id, out)
        except BaseException as exc:  # handed to the caller below
            failure.append(exc)
        finally:
            done_reading()

    writer = threading.Thread(target=produce, name="commit-diff", daemon=True)
    writer.start()
    try:
        with open(r, "rb", buffering=0) as stream:
            try:
                layer = register_layer(engine.stores, stream, parent)
            except BaseException:
                if failure:
                    raise failure[0] from None
                raise
    finally:
        writer.join()
    if failure and not isinstance(failure[0], BrokenPipeError):
        raise failure[0]
    return layer


def _image_config(
    parent: dict[str, Any], container: dict[str, Any], changes: Sequence[str]
) -> dict[str, Any]:
    """The new image's config: the container's Config (which merged the image's with the run
    options, as Docker's does); fields a container config has no place for (OnBuild, Shell,
    ArgsEscaped) come from the image."""
    base = {k: v for k, v in (parent.get("config") or {}).items() if k not in container}
    base.update(container)
    return oci_image.apply_changes(base, changes)


def _platform(parent: dict[str, Any]) -> oci_image.Platform | None:
    os_name, arch = parent.get("os"), parent.get("architecture")
    if isinstance(os_name, str) and isinstance(arch, str) and os_name and arch:
        variant = parent.get("variant")
        return oci_image.Platform(os_name, arch, variant if isinstance(variant, str) else None)
    return None
