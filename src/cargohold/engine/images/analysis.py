"""``image analyze``: what each layer of an image adds, and the bytes later layers hide.

A file written in one layer and deleted (whiteout, opaque directory) or overwritten in a
later one is still stored in its layer: those bytes are *wasted*.  The layers are replayed
base first from their stored tar entries (tar-split records: no file is read):

- a layer's whiteouts apply to the layers below it (OCI: never to its own entries), so they
  are replayed before its entries;
- an entry over a visible path hides what was there (a directory replaced by a file hides
  its whole tree); a directory over a directory only changes metadata.

Efficiency is ``1 - wasted / total`` (total: the content bytes of every layer), dive's score
for these cases.  "Files" counts non-directory entries; "removed" the paths whiteouts hid.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from cargohold.engine import Engine
    from cargohold.store.layer_entries import Entry


class LayerReport(msgspec.Struct, frozen=True):
    index: int  # 1 = base layer
    diff_id: str
    size: int  # content bytes the layer stores
    created_by: str
    added: int = 0
    changed: int = 0
    removed: int = 0
    wasted: int = 0  # bytes of this layer that later layers hide


class WastedPath(msgspec.Struct, frozen=True):
    path: str  # "/var/cache/big"
    size: int  # bytes hidden, summed over the layers that stored it
    count: int  # how many stored copies are hidden


class ImageAnalysis(msgspec.Struct, frozen=True):
    image: str  # as asked for
    id: str
    layers: tuple[LayerReport, ...]
    total: int
    wasted: int
    wasted_paths: tuple[WastedPath, ...]  # largest first

    @property
    def efficiency(self) -> float:
        return 1.0 if not self.total else 1.0 - self.wasted / self.total


class _Node(msgspec.Struct):
    layer: int  # index into the layer list
    size: int
    is_dir: bool


class _Replay:
    """The visible tree while layers are stacked, with what each step hides."""

    def __init__(self, layer_count: int) -> None:
        self.visible: dict[str, _Node] = {}
        self.children: dict[str, set[str]] = {"": set()}
        self.layer_wasted = [0] * layer_count
        self.paths: dict[str, list[int]] = {}  # path -> [bytes, copies]

    def _waste(self, path: str, node: _Node) -> None:
        if node.size:
            self.layer_wasted[node.layer] += node.size
            spent = self.paths.setdefault(path, [0, 0])
            spent[0] += node.size
            spent[1] += 1

    def hide(self, path: str, keep_root: bool = False) -> bool:
        """Hide ``path`` and its tree (``keep_root``: only what is under it); True if
        anything was visible."""
        found = False
        stack = [path]
        while stack:
            current = stack.pop()
            stack.extend(f"{current}/{c}" if current else c
                         for c in self.children.pop(current, ()))
            if current == path and keep_root:
                self.children[path] = set()
                continue
            node = self.visible.pop(current, None)
            if node is not None:
                found = True
                self._waste(current, node)
        if not keep_root:
            parent, _, name = path.rpartition("/")
            self.children.get(parent, set()).discard(name)
        return found

    def put(self, entry: Entry, layer: int) -> str:
        """Add ``entry``; returns "added", "changed" or "" (a directory that existed)."""
        self._parents(entry.path, layer)
        is_dir = entry.kind == "dir"
        old = self.visible.get(entry.path)
        if old is not None and old.is_dir and is_dir:
            return ""
        if old is not None:
            self.hide(entry.path)
        self.visible[entry.path] = _Node(layer, entry.size, is_dir)
        parent, _, name = entry.path.rpartition("/")
        self.children.setdefault(parent, set()).add(name)
        if is_dir:
            self.children.setdefault(entry.path, set())
        return "changed" if old is not None else "added"

    def _parents(self, path: str, layer: int) -> None:
        parts = path.split("/")[:-1]
        current = ""
        for part in parts:
            parent, current = current, f"{current}/{part}" if current else part
            node = self.visible.get(current)
            if node is not None and node.is_dir:
                continue
            if node is not None:
                self.hide(current)  # a file where a directory now is
            self.visible[current] = _Node(layer, 0, True)
            self.children.setdefault(parent, set()).add(part)
            self.children.setdefault(current, set())


def replay(layers: list[list[Entry]]) -> tuple[list[dict[str, int]], _Replay]:
    """Stack the layers' entries; per layer its added/changed/removed counts."""
    state = _Replay(len(layers))
    counts: list[dict[str, int]] = []
    for index, entries in enumerate(layers):
        tally = {"added": 0, "changed": 0, "removed": 0}
        for e in entries:
            if e.kind == "whiteout" and state.hide(e.path):
                tally["removed"] += 1
            elif e.kind == "opaque":
                tally["removed"] += len(state.children.get(e.path, ()))
                state.hide(e.path, keep_root=True)
        for e in entries:
            if e.kind not in ("whiteout", "opaque"):
                what = state.put(e, index)
                if what and e.kind != "dir":
                    tally[what] += 1
        counts.append(tally)
    return counts, state


def analyze(engine: Engine, name: str) -> ImageAnalysis:
    record = engine.images.resolve(name)
    chain = engine.layers.chain(record.top_layer) if record.top_layer else []
    stacked = [engine.layers.entries(layer.chain_id) for layer in chain]
    counts, state = replay(stacked)
    history = [h for h in engine.images.config(record).get("history") or []
               if not h.get("empty_layer")]
    reports = []
    for i, layer in enumerate(chain):
        created_by = str(history[i].get("created_by", "")) if i < len(history) else ""
        size = sum(e.size for e in stacked[i])
        reports.append(LayerReport(i + 1, layer.diff_id, size, created_by,
                                   wasted=state.layer_wasted[i], **counts[i]))
    paths = sorted((WastedPath("/" + p, b, c) for p, (b, c) in state.paths.items()),
                   key=lambda w: (-w.size, w.path))
    return ImageAnalysis(name, record.id, tuple(reports), sum(r.size for r in reports),
                         sum(state.layer_wasted), tuple(paths))
