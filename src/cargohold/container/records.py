"""The container store: one directory per container plus a flock-protected names index.

Layout (``root`` is Settings.root, ``runroot`` Settings.runroot)::

    <root>/containers/names.json            {"name": "<id>"}; guarded by .names.lock
    <root>/containers/<id>/config.json      ContainerRecord without HostConfig
    <root>/containers/<id>/hostconfig.json  HostConfig
    <root>/containers/<id>/state.json       State (written by the CLI and the monitor)
    <root>/containers/<id>/cleanup.json     cleanup actions (container/cleanup.py)
    <root>/containers/<id>/<id>-json.log    json-file log
    <runroot>/containers/<id>/              bundle/, attach.sock, monitor.lock, exit.json

A container exists when its directory exists.  ``add`` writes the names index before it renames
the fully written temporary directory into place, so a crash leaves at worst a name that points
at no directory; such stale names count as free.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import msgspec

from cargohold.container.model import ContainerRecord, RestartPolicy, State, from_json, to_json
from cargohold.errors import Conflict, InvalidArgument, NotFound
from cargohold.util.atomic import read_json, write_json
from cargohold.util.ids import random_below, random_choice, random_hex
from cargohold.util.lockfile import FileLock

_NAME_RE = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+\Z")
_HEX_RE = re.compile(r"^[0-9a-f]{64}\Z")


def conflict_message(name: str, owner: str) -> str:
    return (
        f'Conflict. The container name "/{name}" is already in use by container "{owner}". '
        "You have to remove (or rename) that container to be able to reuse that name."
    )


def validate_name(name: str) -> str:
    """Docker's name rule; returns the name without its leading slash."""
    if not _NAME_RE.match(name):
        raise InvalidArgument(
            f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )
    return name.lstrip("/")


class ContainerStore:
    """Records of containers under ``<root>/containers``; runtime files under ``runroot``."""

    def __init__(self, root: Path, runroot: Path) -> None:
        self.root, self.runroot = root, runroot
        self.base = root / "containers"
        self.runbase = runroot / "containers"
        self._names_path = self.base / "names.json"
        self._lock = FileLock(self.base / ".names.lock")

    # ------------------------------------------------------------------ paths
    def dir(self, cid: str) -> Path:
        return self.base / cid

    def run_dir(self, cid: str) -> Path:
        return self.runbase / cid

    def log_path(self, cid: str) -> Path:
        return self.base / cid / f"{cid}-json.log"

    def bundle_dir(self, cid: str) -> Path:
        return self.runbase / cid / "bundle"

    def attach_socket(self, cid: str) -> Path:
        return self.runbase / cid / "attach.sock"

    def monitor_lock_path(self, cid: str) -> Path:
        return self.runbase / cid / "monitor.lock"

    def cleanup_path(self, cid: str) -> Path:
        return self.base / cid / "cleanup.json"

    # ------------------------------------------------------------------ names index
    def _read_names(self) -> dict[str, str]:
        try:
            data = read_json(self._names_path)
        except FileNotFoundError:
            return {}
        return {str(k): str(v) for k, v in data.items()}

    def _owner(self, names: dict[str, str], name: str) -> str | None:
        owner = names.get(name)
        if owner is not None and self.dir(owner).is_dir():
            return owner
        return None

    def add(self, record: ContainerRecord) -> ContainerRecord:
        """Store a new container (a random name when none); Conflict if the name is taken."""
        self.base.mkdir(parents=True, exist_ok=True)
        with self._lock:
            names = self._read_names()
            if record.name:
                name = validate_name(record.name)
                owner = self._owner(names, name)
                if owner is not None:
                    raise Conflict(conflict_message(name, owner))
            else:
                name = random_name(lambda n: self._owner(names, n) is not None)
            record = _replace_name(record, name)
            tmp = self.base / f".tmp-{record.id}"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(mode=0o710)
            # container-private files: written unsynced, published by the rename below
            self._write_record(tmp, record)
            write_json(tmp / "state.json", to_json(State()), fsync=False)
            names = {n: i for n, i in names.items() if self.dir(i).is_dir()}
            names[name] = record.id
            write_json(self._names_path, names)
            os.rename(tmp, self.dir(record.id))
        self._event(record, "create")
        return record

    def _event(self, record: ContainerRecord, action: str, **extra: str) -> None:
        """``container <action>`` into the run root's event log (container/events.py)."""
        from cargohold.container.events import container_event

        container_event(self.runbase.parent, record, action, extra)

    @staticmethod
    def _write_record(directory: Path, record: ContainerRecord) -> None:
        data = to_json(record)
        # private to the container, each replaced atomically (rename): no fsync needed
        write_json(directory / "hostconfig.json", data.pop("HostConfig"), fsync=False)
        write_json(directory / "config.json", data, fsync=False)

    @contextmanager
    def record_lock(self, cid: str) -> Iterator[None]:
        """Held over every read-modify-write of a container's record (``change_record``,
        ``update_record``, ``rename``), so that changes of different fields at once (network
        connect, update, a rename's relinking) all stay.  Taken after the names lock, never
        before it."""
        with FileLock(self.dir(cid) / "record.lock"):
            yield

    def update_record(self, record: ContainerRecord) -> None:
        """Rewrite a container's config (the name must not change here: use ``rename``);
        a caller that read the record first holds :meth:`record_lock` (or uses
        :meth:`change_record`)."""
        with self.record_lock(record.id):
            if not self.dir(record.id).is_dir():
                raise NotFound(f"No such container: {record.id}")
            try:
                self._write_record(self.dir(record.id), record)
            except FileNotFoundError:  # removed meanwhile
                raise NotFound(f"No such container: {record.id}") from None

    def change_record(
        self, cid: str, change: Callable[[ContainerRecord], ContainerRecord]
    ) -> ContainerRecord:
        """Read the record, apply ``change``, write the result, under the record lock."""
        with self.record_lock(cid):
            try:
                record = change(self.load(cid))
            except FileNotFoundError:
                raise NotFound(f"No such container: {cid}") from None
            self.update_record(record)
        return record

    def rename(self, ref: str, new_name: str) -> ContainerRecord:
        new = validate_name(new_name)
        with self._lock:
            record = self.get(ref)
            old_name = record.name
            if record.name == new:
                raise InvalidArgument("Renaming a container with the same name as its current name")
            names = self._read_names()
            owner = self._owner(names, new)
            if owner is not None:
                raise Conflict(f"Error when allocating new name: {conflict_message(new, owner)}")
            with self.record_lock(record.id):
                record = _replace_name(self.load(record.id), new)
                self._write_record(self.dir(record.id), record)
            names = {n: i for n, i in names.items() if i != record.id and self.dir(i).is_dir()}
            names[new] = record.id
            write_json(self._names_path, names)
        self._event(record, "rename", oldName="/" + old_name)  # moby keeps the slash
        return record

    def remove(self, ref: str) -> ContainerRecord:
        """Delete the record, its logs and its run directory; the name becomes free.  The
        last exit code stays readable for a while (:meth:`removed_exit_code`)."""
        with self._lock:
            record = self.get(ref)
            self._keep_exit_code(record.id)
            trash = self.base / f".rm-{record.id}"
            os.rename(self.dir(record.id), trash)
            names = {n: i for n, i in self._read_names().items() if self.dir(i).is_dir()}
            write_json(self._names_path, names)
        shutil.rmtree(trash, ignore_errors=True)
        shutil.rmtree(self.run_dir(record.id), ignore_errors=True)
        self._event(record, "destroy")
        return record

    _EXITS = ".exits"
    _EXIT_MINUTES = 3  # how long a tombstone is kept, in whole minutes

    def _keep_exit_code(self, cid: str) -> None:
        """A small tombstone with the container's exit code, so that a ``wait`` that began
        before an AutoRemove container went away still learns how it ended (Docker's
        ``wait?condition=removed``).  Tombstones go in one directory per minute; the
        directories of minutes long past are dropped here (a listing of a few entries)."""
        import time

        try:
            code = self.read_state(cid).exit_code
        except (NotFound, ValueError, OSError):
            return
        exits = self.runbase / self._EXITS
        minute = int(time.time() // 60)
        try:
            (exits / str(minute)).mkdir(mode=0o700, parents=True, exist_ok=True)
            (exits / str(minute) / cid).write_text(str(code))
            for name in os.listdir(exits):
                if not name.isdigit() or int(name) < minute - self._EXIT_MINUTES:
                    shutil.rmtree(exits / name, ignore_errors=True)
        except OSError:
            pass

    def removed_exit_code(self, cid: str) -> int | None:
        """The exit code of container ``cid`` when it was removed (recently), else None."""
        import time

        minute = int(time.time() // 60)
        for m in range(minute, minute - self._EXIT_MINUTES - 1, -1):
            try:
                return int((self.runbase / self._EXITS / str(m) / cid).read_text())
            except (OSError, ValueError):
                continue
        return None

    # ------------------------------------------------------------------ lookup
    def ids(self) -> list[str]:
        try:
            entries = os.listdir(self.base)
        except FileNotFoundError:
            return []
        return [e for e in entries if _HEX_RE.match(e)]

    def resolve(self, ref: str) -> str:
        """Full id, then name (with or without "/"), then unique id prefix — Docker's order."""
        if not ref:
            raise NotFound("No such container: ")
        if _HEX_RE.match(ref) and self.dir(ref).is_dir():
            return ref
        owner = self._owner(self._read_names(), ref.lstrip("/"))
        if owner is not None:
            return owner
        if re.fullmatch(r"[0-9a-f]+", ref):
            found = [cid for cid in self.ids() if cid.startswith(ref)]
            if len(found) > 1:
                raise InvalidArgument(f"multiple IDs found with provided prefix: {ref}")
            if found:
                return found[0]
        raise NotFound(f"No such container: {ref}")

    def get(self, ref: str) -> ContainerRecord:
        cid = self.resolve(ref)
        try:
            return self.load(cid)
        except FileNotFoundError:
            raise NotFound(f"No such container: {ref}") from None

    def load(self, cid: str) -> ContainerRecord:
        directory = self.dir(cid)
        data = read_json(directory / "config.json")
        data["HostConfig"] = read_json(directory / "hostconfig.json")
        return from_json(ContainerRecord, data)

    def links_of(self, cid: str) -> list[str]:
        """The ``--link`` values of a container, read without decoding its whole record."""
        try:
            data = read_json(self.dir(cid) / "hostconfig.json")
        except (FileNotFoundError, ValueError):
            return []
        return [str(x) for x in data.get("Links") or ()]

    def restart_policy_of(self, cid: str) -> RestartPolicy | None:
        """The stored restart policy (``update`` changes it while the container runs), read
        without decoding the whole record; None when the record cannot be read."""
        try:
            data = read_json(self.dir(cid) / "hostconfig.json")
        except (FileNotFoundError, ValueError):
            return None
        return from_json(RestartPolicy, data.get("RestartPolicy") or {})

    def list(self) -> list[ContainerRecord]:
        out: list[ContainerRecord] = []
        for cid in self.ids():
            try:
                out.append(self.load(cid))
            except FileNotFoundError:
                continue  # removed while we listed
        out.sort(key=lambda r: r.created, reverse=True)
        return out

    def names(self) -> dict[str, str]:
        names = self._read_names()
        return {n: i for n, i in names.items() if self.dir(i).is_dir()}

    # ------------------------------------------------------------------ state
    def read_state(self, cid: str) -> State:
        try:
            return from_json(State, read_json(self.dir(cid) / "state.json"))
        except FileNotFoundError:
            raise NotFound(f"No such container: {cid}") from None

    def write_state(self, cid: str, state: State) -> None:
        write_json(self.dir(cid) / "state.json", to_json(state), fsync=False)

    @contextmanager
    def state_lock(self, cid: str) -> Iterator[None]:
        if not self.dir(cid).is_dir():
            raise NotFound(f"No such container: {cid}")
        with FileLock(self.dir(cid) / "state.lock"):
            yield

    def update_state(self, cid: str, change: Callable[[State], State]) -> State:
        """Read-modify-write of state.json under the container's state lock."""
        with self.state_lock(cid):
            state = change(self.read_state(cid))
            self.write_state(cid, state)
        return state


def _replace_name(record: ContainerRecord, name: str) -> ContainerRecord:

    return msgspec.structs.replace(record, name=name)


# --------------------------------------------------------------------------- random names


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


ADJECTIVES = _words(
    """
admiring adoring affectionate agile amazing awesome beautiful blissful bold boring brave busy
calm charming clever cool compassionate competent confident cranky crazy dazzling
determined distracted dreamy eager ecstatic elastic elated elegant eloquent epic
exciting fervent festive flamboyant focused friendly frosty funny gallant gifted
goofy gracious great happy hardcore heuristic hopeful hungry infallible inspiring
intelligent interesting jolly jovial keen kind laughing loving lucid magical modest
musing mystifying naughty nervous nice nifty nostalgic objective optimistic peaceful
pedantic pensive practical priceless quirky quizzical recursing relaxed reverent
romantic sad serene sharp silly sleepy stoic strange stupefied suspicious sweet
tender thirsty trusting unruffled upbeat vibrant vigilant vigorous wizardly wonderful
xenodochial youthful zealous zen brisk candid daring gentle humble lively merry plucky
"""
)

SURNAMES = _words(
    """
agnesi albattani allen almeida antonelli archimedes ardinghelli aryabhata austin
babbage banach banzai bardeen bartik bassi beaver bell benz bhabha bhaskara black
blackburn blackwell bohr booth borg bose bouman boyd brahmagupta brattain brown
buck burnell cannon carson cartwright carver cerf chandrasekhar chaplygin chatelet
chatterjee chaum chebyshev clarke cohen colden cori cray curie curran darwin davinci
dewdney dhawan diffie dijkstra dirac driscoll dubinsky easley edison einstein elbakyan
elgamal elion ellis engelbart euclid euler faraday feistel fermat fermi feynman
franklin gagarin galileo galois ganguly gates gauss germain goldberg goldstine
goldwasser golick goodall gould greider grothendieck haibt hamilton haslett hawking
heisenberg hellman hermann herschel hertz heyrovsky hodgkin hofstadter hoover hopper
hugle hypatia ishizaka jackson jang jemison jennings jepsen johnson joliot jones
kalam kapitsa kare keldysh keller kepler khayyam khorana kilby kirch knuth kowalevski
lalande lamarr lamport leakey leavitt lederberg lehmann lewin lichterman liskov
lovelace lumiere mahavira margulis matsumoto maxwell mayer mccarthy mcclintock
mclaren mclean mcnulty meitner mendel mendeleev meninsky merkle mestorf mirzakhani
montalcini moore morse moser murdock napier nash neumann newton nightingale nobel
noether northcutt noyce panini pare pascal pasteur payne perlman pike poincare
poitras proskuriakova ptolemy raman ramanujan rhodes ride ritchie robinson roentgen
rosalind rubin saha sammet sanderson satoshi shamir shannon shaw shirley shockley
shtern sinoussi snyder solomon spence stonebraker sutherland swanson swartz swirles
taussig tesla tharp thompson torvalds tu turing varahamihira vaughan villani
visvesvaraya volhard wescoff wilbur wiles williams williamson wilson wing wozniak
wright wu yalow yonath zhukovsky
"""
)


def random_name(taken: Callable[[str], bool]) -> str:
    """A fresh ``adjective_surname``; after collisions a digit is appended, as Docker does.

    ``boring_wozniak`` is never produced: Steve Wozniak is not boring (Docker's joke).
    """
    for attempt in range(64):
        name = f"{random_choice(ADJECTIVES)}_{random_choice(SURNAMES)}"
        if name == "boring_wozniak":
            continue
        if attempt >= 8:
            name += str(random_below(10))
        if not taken(name):
            return name
    while True:  # practically unreachable
        name = f"{random_choice(ADJECTIVES)}_{random_choice(SURNAMES)}_{random_hex(3)}"
        if not taken(name):
            return name
