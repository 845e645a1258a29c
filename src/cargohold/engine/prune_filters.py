"""The ``--filter`` of the prune verbs (``label``, ``label!``, ``until``), parsed and matched
as Docker's daemon does, for containers, networks, images and the build cache alike.

- ``label=KEY`` / ``label=KEY=VALUE``: only objects carrying that label (every one given);
- ``label!=KEY`` / ``label!=KEY=VALUE``: not objects that carry all of those (moby's
  ``MatchKVList`` on the ``label!`` values);
- ``until=TIMESTAMP``: only objects created at or before it (a Go duration counted back from
  now such as ``24h``, Unix seconds, or an RFC 3339 date / time).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

import msgspec

from cargohold.errors import InvalidArgument

PRUNE_KEYS = ("label", "label!", "until")


class PruneFilters(msgspec.Struct, frozen=True):
    labels: tuple[str, ...] = ()
    not_labels: tuple[str, ...] = ()
    until: float | None = None  # seconds since the epoch
    until_text: str = ""  # as given (the build cache takes durations only)

    @classmethod
    def parse(cls, words: Iterable[str], accepted: Iterable[str] = PRUNE_KEYS) -> PruneFilters:
        """From CLI words (``label=a=b``, ``until=24h``); unknown keys are Docker's error."""
        allowed = set(accepted)
        labels: list[str] = []
        not_labels: list[str] = []
        until: float | None = None
        until_text = ""
        for word in words:
            key, eq, value = word.partition("=")
            key = key.strip().lower()
            if not eq:
                raise InvalidArgument(f"bad format of filter (expected name=value): {word}")
            if key not in allowed:
                raise InvalidArgument(f"Invalid filter '{key}'")
            if key == "until":
                until, until_text = parse_until(value), value
            elif key == "label":
                labels.append(value)
            else:
                not_labels.append(value)
        return cls(tuple(labels), tuple(not_labels), until, until_text)

    @property
    def empty(self) -> bool:
        return not self.labels and not self.not_labels and self.until is None

    def match(self, labels: Mapping[str, str], created: float | None) -> bool:
        """Whether an object with ``labels``, created at ``created`` (epoch seconds; None:
        unknown), is to be pruned."""
        if not all(label_match(labels, want) for want in self.labels):
            return False
        if self.not_labels and all(label_match(labels, want) for want in self.not_labels):
            return False
        return self.until is None or created is None or created <= self.until

    def words(self) -> list[str]:
        """The filters as Docker's system prune prompt lists them (naturally sorted)."""
        out = [f"label={v}" for v in self.labels] + [f"label!={v}" for v in self.not_labels]
        if self.until_text:
            out.append(f"until={self.until_text}")
        return sorted(out)


def label_match(labels: Mapping[str, str], want: str) -> bool:
    key, eq, value = want.partition("=")
    return key in labels and (not eq or labels[key] == value)


def parse_until(value: str) -> float:
    """Docker's ``GetTimestamp``: a duration back from now, Unix seconds, or a date."""
    from cargohold.container.model import parse_time
    from cargohold.oci.durations import parse_go_duration

    text = value.strip()
    try:
        return time.time() - parse_go_duration(text) / 1e9
    except InvalidArgument:
        pass
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return parse_time(text if "T" in text else text + "T00:00:00Z") / 1e9
    except ValueError:
        raise InvalidArgument(
            f'failed to parse value as time or duration: "{value}"'
        ) from None


def created_seconds(rfc3339: str) -> float | None:
    """Epoch seconds of an RFC 3339 time (None when absent or unreadable)."""
    from cargohold.container.model import parse_time

    if not rfc3339:
        return None
    try:
        return parse_time(rfc3339) / 1e9
    except ValueError:
        return None
