"""``cargohold image analyze [--format json] [--fail-under PERCENT] [--top N] IMAGE``.

Per layer: its content size, the instruction that made it, files added / changed / removed
and the bytes of it that later layers hide; then the image's total, wasted bytes and
efficiency, and the largest wasted paths.  ``--fail-under``: exit 1 when the efficiency (in
percent) is below it, for CI gates.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from cargohold.cli.context import Context

if TYPE_CHECKING:
    from cargohold.engine.images.analysis import ImageAnalysis

HELP = "Show what each layer of an image adds and the space later layers waste"


def _percent(text: str) -> float:
    try:
        value = float(text.rstrip("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid percentage: {text!r}") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"percentage out of range 0-100: {text!r}")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("table", "json"), default="table",
                        help="Output format: table (default) or json")
    parser.add_argument("--fail-under", type=_percent, metavar="PERCENT",
                        help="Exit with status 1 when the efficiency is below PERCENT")
    parser.add_argument("--top", type=int, default=10, metavar="N",
                        help="How many of the largest wasted paths to show (default 10)")
    parser.add_argument("image", metavar="IMAGE")


def to_json(report: ImageAnalysis, top: int) -> dict[str, Any]:
    return {
        "image": report.image,
        "id": report.id,
        "layers": [{"index": r.index, "diffId": r.diff_id, "sizeBytes": r.size,
                    "createdBy": r.created_by, "added": r.added, "changed": r.changed,
                    "removed": r.removed, "wastedBytes": r.wasted} for r in report.layers],
        "totalBytes": report.total,
        "wastedBytes": report.wasted,
        "efficiency": round(report.efficiency, 6),
        "wastedPaths": [{"path": w.path, "sizeBytes": w.size, "count": w.count}
                        for w in report.wasted_paths[:top]],
    }


def render_table(report: ImageAnalysis, top: int) -> str:
    from cargohold.cli.humanize import human_size
    from cargohold.cli.output import render_table as table

    rows = [[str(r.index), human_size(r.size), str(r.added), str(r.changed), str(r.removed),
             human_size(r.wasted), _short(r.created_by)] for r in report.layers]
    out = [f"Image: {report.image} ({report.id})", "",
           table(["LAYER", "SIZE", "ADDED", "CHANGED", "REMOVED", "WASTED", "CREATED BY"], rows),
           "",
           f"Total size:    {human_size(report.total)} ({report.total} bytes)",
           f"Wasted space:  {human_size(report.wasted)} ({report.wasted} bytes)",
           f"Efficiency:    {report.efficiency * 100:.2f} %"]
    if report.wasted_paths and top > 0:
        paths = [[human_size(w.size), str(w.count), w.path] for w in report.wasted_paths[:top]]
        out += ["", "Largest wasted paths:", table(["SIZE", "COPIES", "PATH"], paths)]
    return "\n".join(out) + "\n"


def _short(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def run(args: argparse.Namespace, ctx: Context) -> int:
    report = ctx.engine.images.analyze(args.image)
    if args.format == "json":
        import json

        print(json.dumps(to_json(report, args.top), indent=4, ensure_ascii=False),
              file=ctx.stdout)
    else:
        ctx.stdout.write(render_table(report, args.top))
    percent = report.efficiency * 100
    if args.fail_under is not None and percent < args.fail_under:
        digits = 2  # as many as it takes to show that it is below
        while digits < 6 and round(percent, digits) >= args.fail_under:
            digits += 1
        print(f"efficiency {percent:.{digits}f} % is below {args.fail_under:g} %",
              file=ctx.stderr)
        return 1
    return 0
