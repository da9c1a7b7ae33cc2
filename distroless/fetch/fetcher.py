"""Verified, cached, parallel fetching of indexes, keys and packages.

Nothing enters the cache unverified: an index only after its signature checks out, a package only
after the whole chain (control SHA-1 = the index's `C:`, datahash, per-file SHA-1, and the
whole-file sha256 when a lock gives one). With `offline`, only the cache is used.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from distroless.apk.model import Package
from distroless.errors import FetchError, FormatError, LimitError
from distroless.events import NULL, Events, Phase
from distroless.store.cache import Cache
from distroless.fetch.repository import Repository, is_remote, local_path
from distroless.fetch.transport import Transport
from distroless.limits import DEFAULT_LIMITS, Limits
from distroless.fsutil import KEY_CAP, read_regular

if TYPE_CHECKING:  # the package reader, its crypto and the expander load only when a package is fetched
    from collections.abc import Callable

    from distroless.apk.keys import Keyring
    from distroless.apk.package import ApkFile
    from distroless.store.expand import Expanded

    Expander = Callable[..., Expanded]  # `store.expand.expand`'s signature


@dataclass(frozen=True, slots=True)
class Fetched:
    package: Package
    path: Path
    sha256: str
    apk: ApkFile | None  # None when served from the cache (already verified on admission)
    expanded: Expanded | None = None  # the expansion made while verifying a download (this run's)


@dataclass(frozen=True, slots=True)
class IndexData:
    """An index file's bytes as found (not yet verified): local, downloaded now, or cached by URL."""

    url: str
    repo: Repository
    data: bytes | None  # None: a local index that does not exist (skipped, as apko does)
    downloaded: bool = False  # fetched in this run: recorded by URL once known to be good


class Fetcher:
    def __init__(self, cache: Cache, transport: Transport | None = None, *, offline: bool = False,
                 jobs: int = 4, events: Events = NULL, limits: Limits = DEFAULT_LIMITS):
        self.cache = cache
        self.limits = limits
        self.transport = transport or Transport()
        self.offline = offline
        self.jobs = jobs
        self.events = events

    def keys(self, locations: list[str]) -> list[tuple[str, str, bytes]]:
        """(file name, location, PEM) of every key in files, directories or URLs; a URL key is
        named by its decoded basename, as in /etc/apk/keys."""
        out: list[tuple[str, str, bytes]] = []
        for loc in locations:
            if is_remote(loc):
                out.append((unquote(urlsplit(loc).path.rsplit("/", 1)[-1]), loc, self._remote_small(loc, KEY_CAP)))
                continue
            path = Path(local_path(loc))
            # the location is kept as written (apko's lock records `./keys/x.rsa.pub` so)
            files = ([(f, f"{loc.rstrip('/')}/{f.name}") for f in sorted(path.iterdir()) if f.is_file()]
                     if path.is_dir() else [(path, loc)])
            for f, shown in files:
                try:
                    out.append((f.name, shown, read_regular(f, KEY_CAP, "key")))
                except OSError as e:
                    raise FetchError(f"{f}: cannot read key: {e.strerror}") from None
        return out

    def keyring(self, locations: list[str]) -> Keyring:
        from distroless.apk.keys import Keyring

        ring = Keyring()
        for name, loc, pem in self.keys(locations):
            ring.add(name, pem, loc)
        return ring

    def _remote_small(self, url: str, cap: int) -> bytes:
        """A small remote file (a key): cached by URL so that offline builds find it."""
        cached = self.cache.find_index(url)
        if self.offline:
            if cached is None:
                raise FetchError(f"{url}: not in the cache and --offline was given")
            return cached.read_bytes()
        data = self.transport.get(url, cap)
        self._store_by_url(url, data)
        return data

    def _store_by_url(self, url: str, data: bytes) -> None:
        """Keep a verified small download (index, key) so that `offline` finds it by URL."""
        digest = hashlib.sha256(data).hexdigest()
        with self.cache.incoming() as (f, tmp):
            f.write(data)
            f.flush()
            self.cache.admit(tmp, digest)
        self.cache.record_index(url, digest)

    def index(self, repo: Repository, arch: str, keyring: Keyring, *, verify: bool = True) -> list[Package]:
        """The packages of `repo` for `arch`. A missing local index is skipped (as apko does)."""
        return self.index_packages(self.index_data(repo, arch), keyring, verify=verify)

    def index_data(self, repo: Repository, arch: str) -> IndexData:
        """The bytes of `repo`'s index for `arch`, unverified: what `index_packages` reads."""
        url = repo.index_url(arch)
        if not is_remote(url):
            path = Path(local_path(url))
            if not path.exists():
                self.events.warning(f"{url}: no such index, skipped")
                return IndexData(url, repo, None)
            return IndexData(url, repo, path.read_bytes())
        if self.offline:
            cached = self.cache.find_index(url)
            if cached is None:
                raise FetchError(f"{url}: not in the cache and --offline was given (run once online to fill it)")
            return IndexData(url, repo, cached.read_bytes())
        # the compressed index is never larger than its decompressed cap
        return IndexData(url, repo, self.transport.get(url, min(self.limits.index_decompressed, self.limits.http_response)),
                         downloaded=True)

    def index_packages(self, found: IndexData, keyring: Keyring, *, verify: bool = True) -> list[Package]:
        """Parse and verify, or take the parse made when these bytes were verified with these keys."""
        if found.data is None:
            return []
        from distroless.fetch import parsedindex

        packages = parsedindex.read_index(self.cache.root, found.data, found.url, keyring, verify=verify,
                                          repository=found.repo.url, pin=found.repo.pin,
                                          cap=self.limits.index_decompressed)
        self.remember(found)
        return packages

    def remember(self, found: IndexData) -> None:
        """Keep a downloaded index that is known to be good, so that `offline` finds it by URL."""
        if found.downloaded and found.data is not None:
            self._store_by_url(found.url, found.data)

    def url_of(self, pkg: Package, arch: str) -> str:
        if not pkg.repository:
            raise FormatError(f"{pkg.name}-{pkg.version}: no repository recorded for this package")
        return Repository(pkg.repository).package_url(arch, pkg.name, pkg.version)

    def package(self, pkg: Package, arch: str, *, url: str | None = None, sha256: str | None = None,
                progress: Phase | None = None, expander: Expander | None = None,
                in_place: bool = False) -> Fetched:
        """Fetch one package, verified against its `C:` (and `sha256` when a lock pins it);
        `expander` runs the verifying expansion (`store.expandpool`: on another core). With
        `in_place`, for a caller that needs only the expansion, a package in a local repository
        is expanded where it is instead of copied into the cache first (as apko reads it)."""
        if not pkg.checksum:
            raise FormatError(f"{pkg.name}-{pkg.version}: no control checksum to verify the download against")
        hit = self.cache.find_apk(pkg.checksum, sha256, size=None if sha256 else (pkg.size or None))
        if hit is not None:
            return Fetched(pkg, hit, hit.name, None)
        location = url or self.url_of(pkg, arch)
        if expander is None:
            from distroless.store.expand import expand as expander
        if in_place and not is_remote(location):
            return self._in_place(pkg, Path(local_path(location)), location, sha256, expander)
        if self.offline and is_remote(location):
            raise FetchError(f"{location}: not in the cache and --offline was given")
        with self.cache.incoming() as (f, tmp):
            # The index's S: is the file's size: a response that outgrows it is cut off there.
            cap = min(self.limits.http_response, pkg.size) if pkg.size and not sha256 else self.limits.http_response
            self.transport.download(location, f, cap,
                                    on_bytes=(lambda n: progress.advance(0, n)) if progress else None)
            f.flush()
            # Verifying a package means decompressing it, so the expansion is kept from the same
            # pass: installing it later is a cache hit, not a second decompression.
            exp = expander(tmp, self.cache, expected_checksum=pkg.checksum, expected_sha256=sha256,
                         source=location, limits=self.limits)
            path = self.cache.admit(tmp, exp.apk.sha256)
        self.cache.record_apk(pkg.checksum, exp.apk.sha256, exp.apk.file_size)
        return Fetched(pkg, path, exp.apk.sha256, exp.apk, exp)

    def _in_place(self, pkg: Package, path: Path, location: str, sha256: str | None, expander: Expander) -> Fetched:
        from distroless.store.expand import cached

        size = None if sha256 else (pkg.size or None)
        known = self.cache.find_local(path, pkg.checksum, sha256, size)
        exp = cached(self.cache, known, pkg.checksum) if known else None
        if exp is None:
            try:
                found = path.stat().st_size
            except FileNotFoundError:
                raise FetchError(f"{location}: not found") from None
            except OSError as e:
                raise FetchError(f"{location}: {e.strerror}") from None
            cap = min(self.limits.http_response, size) if size else self.limits.http_response
            if found > cap:  # the index's S: caps it, as it caps a download
                raise LimitError(f"{location}: larger than the cap of {cap} bytes")
            exp = expander(path, self.cache, expected_checksum=pkg.checksum, expected_sha256=sha256,
                           source=location, limits=self.limits)
            self.cache.record_local(pkg.checksum, exp.apk.sha256, exp.apk.file_size)
        return Fetched(pkg, path, exp.apk.sha256, None if known else exp.apk, exp)

    def packages(self, pkgs: list[Package], arch: str, *, urls: dict[str, str] | None = None,
                 sha256s: dict[str, str] | None = None) -> list[Fetched]:
        """Fetch in parallel (bounded by `jobs`); results keep the input order."""
        urls, sha256s = urls or {}, sha256s or {}
        with self.events.phase("fetching packages", total=len(pkgs)) as progress:

            def one(p: Package) -> Fetched:
                try:
                    return self.package(p, arch, url=urls.get(p.name), sha256=sha256s.get(p.name), progress=progress)
                finally:
                    progress.advance(1)

            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=max(1, self.jobs)) as pool:
                return list(pool.map(one, pkgs))
