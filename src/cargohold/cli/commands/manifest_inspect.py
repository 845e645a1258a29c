"""``cargohold manifest inspect [--verbose] [--insecure] NAME``: Docker's output.

- a manifest: the bytes the registry served, re-indented with tabs (Go's ``json.Indent``,
  which keeps every token as it is);
- a manifest list / OCI index: rebuilt from its entries' descriptors (mediaType, size,
  digest, platform) with three-space indentation, as docker/distribution marshals it;
- ``--verbose``: Docker 20.10's ``ImageManifest`` objects (Ref, Descriptor with the
  platform, the manifest under SchemaV2Manifest, or OCIManifest for OCI manifests, which
  Docker 20.10 cannot show), tab-indented; for a list, an array of them.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from cargohold.cli.context import Context

if TYPE_CHECKING:
    from cargohold.engine.images.manifest import ManifestEntry, ManifestReport

HELP = "Display an image manifest, or manifest list"
_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--insecure", action="store_true",
                        help="Allow communication with an insecure registry")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="Output additional info including layers and platform")
    parser.add_argument("name", metavar="MANIFEST")


def go_indent(raw: bytes, indent: str) -> str:
    """Go's ``json.Indent(dst, raw, "", indent)``: whitespace between tokens replaced, the
    tokens themselves (strings, numbers) kept byte for byte; ``{}`` and ``[]`` stay empty."""
    whole = raw.decode("utf-8", "surrogateescape")
    text = whole.strip(" \t\r\n")
    trailing = whole[len(whole.rstrip(" \t\r\n")):]  # Go keeps what follows the value
    out: list[str] = []
    depth, i, n = 0, 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
            continue
        if c in " \t\r\n":
            i += 1
            continue
        if c in "{[":
            k = i + 1
            while k < n and text[k] in " \t\r\n":
                k += 1
            if k < n and text[k] == ("}" if c == "{" else "]"):
                out.append(c + text[k])
                i = k + 1
                continue
            depth += 1
            out.append(c + "\n" + indent * depth)
        elif c in "}]":
            depth -= 1
            out.append("\n" + indent * depth + c)
        elif c == ",":
            out.append(",\n" + indent * depth)
        elif c == ":":
            out.append(": ")
        else:
            out.append(c)
        i += 1
    return "".join(out) + trailing


def _go_json(obj: Any, indent: str) -> str:
    """``json.MarshalIndent`` of Go values: HTML characters escaped as Go does."""
    text = json.dumps(obj, indent=indent, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_list(report: ManifestReport) -> str:
    entries = [{"mediaType": e.media_type, "size": e.size, "digest": e.digest,
                "platform": e.platform or {"architecture": "", "os": ""}}
               for e in report.entries]
    first = report.entries[0].media_type if report.entries else ""
    media = _OCI_INDEX if first == _OCI_MANIFEST else _DOCKER_LIST
    return _go_json({"schemaVersion": 2, "mediaType": media, "manifests": entries}, "   ")


def _verbose_entry(entry: ManifestEntry) -> dict[str, Any]:
    descriptor: dict[str, Any] = {"mediaType": entry.media_type, "digest": entry.digest,
                                  "size": entry.size}
    if entry.platform:
        descriptor["platform"] = entry.platform
    key = "OCIManifest" if entry.media_type == _OCI_MANIFEST else "SchemaV2Manifest"
    return {"Ref": entry.ref, "Descriptor": descriptor, key: json.loads(entry.raw)}


def render(report: ManifestReport, verbose: bool) -> str:
    if verbose:
        items = [_verbose_entry(e) for e in report.entries]
        return _go_json(items if report.is_list else items[0], "\t")
    if report.is_list:
        return render_list(report)
    return go_indent(report.entries[0].raw, "\t")


def run(args: argparse.Namespace, ctx: Context) -> int:
    from cargohold.errors import CargoholdError

    try:
        report = ctx.engine.registry.inspect_manifest(args.name, args.insecure, args.verbose)
    except CargoholdError as e:
        print(e.message, file=ctx.stderr)  # Docker's CLI reports these itself: no prefix
        return 1
    print(render(report, args.verbose), file=ctx.stdout)
    return 0
