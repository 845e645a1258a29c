"""The README's main job: an end-to-end demo (grows into the seed's Apache example)."""

from __future__ import annotations

import sys

from cargohold.cli.main import main as cli


def main() -> int:
    print("$ cargohold version")
    return cli(["version"])


if __name__ == "__main__":
    sys.exit(main())
