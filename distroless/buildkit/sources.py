"""A melange recipe's sources as BuildKit sources, pinned by what the recipe pins: the packages
mode mounts each where its pipeline looks first, so the step that uses it runs with no network.

  fetch with expected-sha256   an http source with that checksum, at /var/cache/melange/sha256:<hex>
                               (a wrong one fails in BuildKit, naming the URL and both digests);
  fetch with expected-sha512   an http source the step's own sha512sum checks, …/sha512:<hex>;
  git-checkout with            a git source at that commit (its .git kept), at /var/cache/melange/
  expected-commit              git/<commit>: the pipeline fetches the commit from it. It is fetched
                               while the graph is made, so a commit the repository lacks fails
                               there, naming the repository, the expected commit and the one the
                               recipe's branch or tag (or HEAD) has.
Anything unpinned is refused unless `--build-arg DISTROLESS_ALLOW_NETWORK=true` (then the step
downloads or clones it itself, as the CLI does).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass

from distroless.errors import DistrolessError
from distroless.melange.compile import CompiledRecipe

from . import llb, transport

FETCH_CACHE = "/var/cache/melange"
ALLOW_NETWORK = "DISTROLESS_ALLOW_NETWORK"  # build arg: unpinned fetches and git-checkout run with network


@dataclass(frozen=True, slots=True)
class GitPin:
    repository: str
    commit: str
    ref: str  # what the recipe checks out: refs/tags/T, refs/heads/B, or "" (the default branch)


@dataclass(frozen=True, slots=True)
class Source:
    cache_name: str  # where under /var/cache/melange the pipeline looks for it
    digest: str  # the hex the step's script names
    state: llb.State
    selector: str  # the part of `state` mounted there
    git: GitPin | None = None


def redacted(url: str) -> str:
    """A URL for names and messages: never its credentials."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]))


def _fetch(w: dict, filename: str, allow_network: bool, no_cache: bool) -> Source | None:
    uri = w.get("uri", "")
    if w.get("expected-sha256"):
        hexd = w["expected-sha256"].lower()
        name = f"sha256:{hexd}"
        state = llb.http(uri, checksum=name, filename=name, perm=0o644, ignore_cache=no_cache,
                         name=f"fetch {redacted(uri)} (expected sha256:{hexd})")
    elif w.get("expected-sha512"):
        # BuildKit verifies sha256 only: the download is keyed by its URL, and the step's
        # sha512sum check (the pipeline's own) refuses other bytes before anything uses them
        hexd = w["expected-sha512"].lower()
        name = f"sha512:{hexd}"
        state = llb.http(uri, filename=name, perm=0o644, ignore_cache=no_cache,
                         name=f"fetch {redacted(uri)} (expected sha512:{hexd}, checked by the step)")
    elif allow_network:
        return None
    else:
        raise DistrolessError(
            f"{filename}: fetch {redacted(uri)}: no expected-sha256 or expected-sha512; the frontend builds "
            f"from pinned sources only (--build-arg {ALLOW_NETWORK}=true lets the step download it)")
    return Source(name, hexd, state, f"/{name}")


def _git(w: dict, filename: str, allow_network: bool, no_cache: bool) -> Source | None:
    repo = w.get("repository", "")
    commit = w.get("expected-commit", "").lower()  # the compiler checked it: 40 hex digits
    where = f"{filename}: git-checkout {redacted(repo)}"
    if not commit:
        if allow_network:
            return None
        raise DistrolessError(f"{where}: no expected-commit; the frontend builds from pinned sources only "
                              f"(--build-arg {ALLOW_NETWORK}=true lets the step clone it)")
    if not allow_network:
        for key, what in (("recurse-submodules", "submodules"), ("cherry-picks", "cherry-picks")):
            value = str(w.get(key, "")).strip()
            if value and value != "false":
                raise DistrolessError(f"{where}: {key}: the step fetches the {what} itself, which needs "
                                      f"--build-arg {ALLOW_NETWORK}=true")
    ref = f"refs/tags/{w['tag']}" if w.get("tag") else f"refs/heads/{w['branch']}" if w.get("branch") else ""
    try:
        state = llb.git(repo, commit, keep_git_dir=True, ignore_cache=no_cache,
                        name=f"git-checkout {redacted(repo)} at {commit}")
    except ValueError as e:
        raise DistrolessError(f"{where}: {e}") from None
    return Source(f"git/{commit}", commit, state, "", GitPin(repo, commit, ref))


def pinned_sources(compiled: CompiledRecipe, filename: str, allow_network: bool, no_cache: bool) -> list[Source]:
    """The recipe's `fetch` and `git-checkout` steps as BuildKit sources; what the recipe does not
    pin is refused unless the network is allowed."""
    out: dict[str, Source] = {}
    for st in compiled.steps():
        w = dict(st.with_ or {})
        make = {"fetch": _fetch, "git-checkout": _git}.get(st.uses or "")
        src = make(w, filename, allow_network, no_cache) if make else None
        if src is not None:
            out.setdefault(src.cache_name, src)
    return list(out.values())


def verify_git_sources(gw, sources: Sequence[Source], filename: str) -> None:
    """Fetch each pinned git source now (once cached, no network): a commit its repository lacks
    fails here, naming the repository, the expected commit and the commit the recipe's ref has."""
    for src in sources:
        if src.git is None:
            continue
        pin = src.git
        try:
            gw.solve(src.state, evaluate=True)
        except transport.BridgeError as e:
            what = pin.ref.removeprefix("refs/heads/").removeprefix("refs/tags/") or "HEAD"
            probe = llb.git(pin.repository, pin.ref, keep_git_dir=True,
                            name=f"git-checkout {redacted(pin.repository)}: resolve {what}")
            try:
                head = gw.read_all(gw.solve(probe), ".git/HEAD").decode("utf-8", "replace").strip()
            except transport.BridgeError:
                head = ""
            has = f"{what} is {head}" if head else f"{what} could not be fetched either"
            raise DistrolessError(f"{filename}: git-checkout {redacted(pin.repository)}: expected commit "
                                  f"{pin.commit}, which the repository does not have; {has} "
                                  f"({str(e).splitlines()[0] if str(e) else 'fetch failed'})") from None
