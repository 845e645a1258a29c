"""Build contexts from git repositories, as ``docker build URL`` takes them.

A source is a git URL when it starts with ``git://``, ``git@`` or ``github.com/`` (then
``https://`` is put in front), or is an http(s) URL whose path ends in ``.git``.  The fragment
``#ref:subdir`` names a branch, tag or commit (default: the remote's HEAD) and the directory of
the checkout used as the context root (default: the top).  Cloning runs the ``git`` binary,
shallow where the remote allows it (git's dumb HTTP protocol does not), with submodules and
never prompting; the ``.git`` entries are removed from the checkout afterwards.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import msgspec

from cargohold.errors import InvalidArgument

CLONE_ERROR = "unable to prepare context: unable to 'git clone' to temporary context directory: "

_FULL_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_COMMITISH = re.compile(r"[0-9a-f]{7,64}")


class GitContextError(InvalidArgument):
    """A git context that could not be prepared; the message is Docker's wording."""


class GitSource(msgspec.Struct, frozen=True):
    """A parsed git build context: what to clone, which ref, which directory of it."""

    remote: str  # the URL handed to git, fragment removed
    ref: str | None  # branch, tag or commit; None = the remote's HEAD
    subdir: str  # normalized, relative, "" = the checkout's top


def is_git_url(source: str) -> bool:
    """Whether ``docker build`` would treat ``source`` as a git repository."""
    if source.startswith(("git://", "git@", "github.com/")):
        return True
    if source.startswith(("http://", "https://")):
        return urlsplit(source.partition("#")[0]).path.endswith(".git")
    return False


def parse_git_url(source: str) -> GitSource:
    """Split ``source`` into remote, ref and subdirectory (``URL#ref:subdir``)."""
    if source.startswith("github.com/"):
        source = "https://" + source
    remote, _, fragment = source.partition("#")
    ref, _, subdir = fragment.partition(":")
    if ref.startswith("-"):
        raise GitContextError(f"{CLONE_ERROR}invalid refspec: {ref}")
    return GitSource(remote, ref or None, _clean_subdir(subdir))


def _clean_subdir(subdir: str) -> str:
    if not subdir:
        return ""
    clean = posixpath.normpath(subdir.lstrip("/"))
    if clean == ".":
        return ""
    if clean == ".." or clean.startswith("../"):
        raise GitContextError(
            f'{CLONE_ERROR}error setting git context, "{subdir}" not within git root'
        )
    return clean


def clone(source: GitSource, dest: Path) -> Path:
    """Check ``source`` out into ``dest`` (which must not exist yet) without its ``.git``
    entries; returns the context directory (``dest`` or its subdirectory).  On error
    :class:`GitContextError` is raised and ``dest`` may be left for the caller to remove."""
    if shutil.which("git") is None:
        raise GitContextError(
            "unable to prepare context: unable to find 'git': "
            'exec: "git": executable file not found in $PATH'
        )
    _checkout(source, dest)
    _strip_git_entries(dest)
    return _context_root(dest, source.subdir)


# -- git invocations -----------------------------------------------------------------------------


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["GIT_TERMINAL_PROMPT"] = "0"  # never ask for credentials
    env["LC_ALL"] = "C"  # messages in English: the shallow fallback reads them
    env.pop("LANGUAGE", None)
    if "GIT_SSH_COMMAND" not in env and "GIT_SSH" not in env:
        env["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes"  # git@ URLs: no password prompts
    return env


def _git(*args: str, cwd: Path | None = None) -> str | None:
    """Run git; None on success, else the line of its stderr that says why (the first
    ``fatal:``, else the first ``error:``, else the last line)."""
    proc = subprocess.run(
        ["git", "-c", "advice.detachedHead=false", *args],
        cwd=cwd,
        env=_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
    )
    if proc.returncode == 0:
        return None
    lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
    for prefix in ("fatal:", "error:"):
        for line in lines:
            if line.startswith(prefix):
                return line
    return lines[-1] if lines else f"git {args[0]}: exit status {proc.returncode}"


def _clone(remote: str, dest: Path, branch: str | None, shallow: bool) -> str | None:
    args = ["clone", "-q", "--recurse-submodules"]
    if shallow:
        args += ["--depth", "1", "--shallow-submodules"]
    if branch is not None:
        args += ["--branch", branch]
    return _git(*args, "--", remote, str(dest))


def _fetch_ref(remote: str, ref: str, dest: Path) -> str | None:
    """A shallow checkout of any ref or commit id: init, fetch it alone, check it out."""
    dest.mkdir()
    steps: list[tuple[str, ...]] = [
        ("init", "-q"),
        ("remote", "add", "--", "origin", remote),
        ("fetch", "-q", "--depth", "1", "origin", "--", ref),
        ("checkout", "-q", "--detach", "FETCH_HEAD"),
        ("submodule", "update", "-q", "--init", "--recursive", "--depth", "1"),
    ]
    for step in steps:
        err = _git(*step, cwd=dest)
        if err is not None:
            return err
    return None


def _checkout(source: GitSource, dest: Path) -> None:
    remote, ref = source.remote, source.ref
    if ref is not None and _FULL_COMMIT.fullmatch(ref):
        err = _fetch_ref(remote, ref, dest)
    else:
        err = _clone(remote, dest, ref, shallow=True)
        if ref is not None and err is not None and "not found in upstream" in err:
            # no branch or tag of that name: another ref (pull/1/head) or a commit id
            shutil.rmtree(dest, ignore_errors=True)
            if _fetch_ref(remote, ref, dest) is None:
                return
    if err is None:
        return
    commitish = ref is not None and _COMMITISH.fullmatch(ref) is not None
    if "shallow" not in err and not commitish:
        raise GitContextError(CLONE_ERROR + err)
    # the dumb HTTP protocol cannot clone shallowly, an abbreviated commit cannot be fetched:
    # clone everything, then check the ref out
    shutil.rmtree(dest, ignore_errors=True)
    if ref is None or not commitish:
        err = _clone(remote, dest, ref, shallow=False)
    else:
        err = _clone(remote, dest, None, shallow=False) or _checkout_commitish(dest, ref)
    if err is not None:
        raise GitContextError(CLONE_ERROR + err)


def _checkout_commitish(repo: Path, ref: str) -> str | None:
    """Detach at ``ref`` in a full clone (a commit, a tag, or a branch of origin)."""
    for name in (ref, f"origin/{ref}"):
        if _git("rev-parse", "-q", "--verify", f"{name}^{{commit}}", cwd=repo) is None:
            return _git("checkout", "-q", "--detach", name, cwd=repo) or _git(
                "submodule", "update", "-q", "--init", "--recursive", cwd=repo
            )
    return f"fatal: couldn't find remote ref {ref}"


# -- the checkout as a context -------------------------------------------------------------------


def _strip_git_entries(root: Path) -> None:
    """Remove ``.git`` (the repository's directory, submodules' gitfiles) everywhere."""
    for dirpath, dirnames, filenames in os.walk(root):
        path = os.path.join(dirpath, ".git")
        if ".git" in dirnames:
            dirnames.remove(".git")
            if os.path.islink(path):
                os.unlink(path)
            else:
                shutil.rmtree(path)
        elif ".git" in filenames:
            os.unlink(path)


def _context_root(root: Path, subdir: str) -> Path:
    """``root/subdir``, refused when it (through symlinks) leaves ``root`` or is no directory."""
    if not subdir:
        return root
    real_root = os.path.realpath(root)
    target = os.path.realpath(os.path.join(real_root, subdir))
    if os.path.commonpath([real_root, target]) != real_root:
        raise GitContextError(
            f'{CLONE_ERROR}error setting git context, "{subdir}" not within git root'
        )
    if not os.path.isdir(target):
        what = "not a directory" if os.path.lexists(target) else "no such directory"
        raise GitContextError(f"{CLONE_ERROR}error setting git context, {what}: {subdir}")
    return Path(target)
