"""One HTTP session for every download: timeouts, retries with backoff, `HTTP_AUTH`, size caps.

Local locations (`file://`, plain paths) are read from disk through the same interface, so callers
never branch on where bytes come from.
"""

from __future__ import annotations

import errno
import io
import os
import time
from dataclasses import dataclass
from typing import BinaryIO, Callable
from urllib.parse import urlsplit

from distroless.errors import FetchError, FormatError, LimitError
from distroless.fetch.repository import is_remote, local_path

HTTP_RESPONSE_CAP = 8 << 30  # apko's default --max-http-response-size
_CHUNK = 1 << 20
# Every download must finish within this many seconds, however slowly a server drips bytes
# (the per-read timeout alone never fires while a byte arrives every few seconds).
DOWNLOAD_DEADLINE = 900.0
_KERNEL_PIECE = 8 << 20


@dataclass(frozen=True, slots=True)
class BasicAuth:
    host: str
    user: str
    password: str

    def __repr__(self) -> str:  # never print the password
        return f"BasicAuth(host={self.host!r}, user={self.user!r}, password=***)"


def parse_http_auth(value: str | None) -> list[BasicAuth]:
    """`HTTP_AUTH=basic:HOST:USER:PASS` as apko reads it (the password may contain colons)."""
    if not value:
        return []
    kind, _, rest = value.partition(":")
    host, _, rest = rest.partition(":")
    user, sep, password = rest.partition(":")
    if kind != "basic" or not host or not sep:
        raise FormatError("HTTP_AUTH: expected 'basic:HOST:USER:PASSWORD'")
    return [BasicAuth(host, user, password)]


class Transport:
    def __init__(self, *, timeout: float = 30.0, retries: int = 4, backoff: float = 0.5,
                 pool: int = 8, auth: list[BasicAuth] | None = None, deadline: float = DOWNLOAD_DEADLINE):
        self.timeout = timeout
        self.deadline = deadline
        self.auth = auth or []  # credentials come from the front door (HTTP_AUTH), per host
        self._retry = (retries, backoff, pool)
        self._session = None  # made on the first remote request: local builds never load requests

    @property
    def session(self):  # -> requests.Session
        if self._session is None:
            import requests
            from requests.adapters import HTTPAdapter
            from urllib3.util.retry import Retry

            retries, backoff, pool = self._retry
            session = requests.Session()
            retry = Retry(total=retries, connect=retries, read=retries, backoff_factor=backoff,
                          status_forcelist=(429, 500, 502, 503, 504), allowed_methods=("GET", "HEAD"),
                          respect_retry_after_header=True, raise_on_status=False)
            adapter = HTTPAdapter(max_retries=retry, pool_connections=pool, pool_maxsize=pool)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._session = session
        return self._session

    def _auth_for(self, url: str) -> tuple[str, str] | None:
        host = urlsplit(url).hostname or ""
        netloc = urlsplit(url).netloc
        for a in self.auth:
            if a.host in (host, netloc):
                return (a.user, a.password)
        return None

    def download(self, location: str, out: BinaryIO, cap: int = HTTP_RESPONSE_CAP,
                 on_bytes: Callable[[int], None] | None = None) -> int:
        """Copy `location` into `out`; returns the byte count. Errors name the location."""
        if not is_remote(location):
            path = local_path(location)
            try:
                with open(path, "rb") as f:
                    n = _copy_in_kernel(f, out, cap, on_bytes, location)
                    while chunk := f.read(_CHUNK):
                        n += len(chunk)
                        if n > cap:
                            raise LimitError(f"{location}: larger than the cap of {cap} bytes")
                        _write(out, chunk, location)
                        if on_bytes:
                            on_bytes(len(chunk))
                    if n > cap:
                        raise LimitError(f"{location}: larger than the cap of {cap} bytes")
                    return n
            except FileNotFoundError:
                raise FetchError(f"{location}: not found") from None
            except OSError as e:
                raise FetchError(f"{location}: {e.strerror}") from None
        import requests
        import urllib3

        end = time.monotonic() + self.deadline
        try:
            with self.session.get(location, stream=True, timeout=self.timeout, auth=self._auth_for(location)) as r:
                if r.status_code != 200:
                    raise FetchError(f"{location}: HTTP {r.status_code} {r.reason}")
                n = 0
                while True:
                    # read1: whatever has arrived (up to a chunk), so the deadline is checked
                    # between reads however few bytes each brings
                    chunk = r.raw.read1(_CHUNK, decode_content=True)
                    if not chunk:
                        break
                    n += len(chunk)
                    if n > cap:
                        raise LimitError(f"{location}: response larger than the cap of {cap} bytes")
                    _write(out, chunk, location)
                    if on_bytes:
                        on_bytes(len(chunk))
                    if time.monotonic() > end:
                        raise FetchError(f"{location}: download did not finish within the deadline of "
                                         f"{self.deadline:g} s ({n} bytes received)")
                return n
        except (requests.RequestException, urllib3.exceptions.HTTPError) as e:
            from distroless import neterrors

            raise FetchError(f"{location}: {neterrors.describe(e, location)}") from None

    def get(self, location: str, cap: int = HTTP_RESPONSE_CAP) -> bytes:
        buf = io.BytesIO()
        self.download(location, buf, cap)
        return buf.getvalue()


def _write(out: BinaryIO, data: bytes, location: str) -> None:
    try:
        out.write(data)
    except OSError as e:  # disk full: say which file, and for which download
        name = getattr(out, "name", None)
        where = f"{name}" if isinstance(name, str) else "the output"
        raise FetchError(f"{where}: writing {location}: {e.strerror or e}") from None


def _copy_in_kernel(src: BinaryIO, out: BinaryIO, cap: int, on_bytes: Callable[[int], None] | None,
                    location: str) -> int:
    """Copy a local file into a file with copy_file_range (the bytes never enter Python; a
    reflink where the filesystem can). Returns the bytes copied: 0 when `out` is no file or the
    kernel cannot (the caller's loop then copies). Stops one byte past `cap`, for the caller."""
    try:
        dst = out.fileno()
        out.flush()
    except (AttributeError, io.UnsupportedOperation):
        return 0
    n = 0
    while n <= cap:
        try:
            k = os.copy_file_range(src.fileno(), dst, min(_KERNEL_PIECE, cap + 1 - n))
        except OSError as e:
            if n == 0 and e.errno in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF):
                return 0
            name = getattr(out, "name", None)  # disk full: say which file, as _write does
            raise FetchError(f"{name if isinstance(name, str) else 'the output'}: writing {location}: "
                             f"{e.strerror or e}") from None
        if not k:
            break
        n += k
        if on_bytes:
            on_bytes(k)
    out.seek(0, os.SEEK_END)  # the file object's position follows what the kernel wrote
    return n
