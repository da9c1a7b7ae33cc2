"""A small OCI distribution (registry v2) client over `requests`.

Covers what pushing images and cosign attachments needs: API ping, Bearer-token and Basic auth
(credentials from docker's config.json), blob HEAD/GET, cross-repository mount, monolithic and
chunked uploads that resume from the registry's reported offset after a dropped connection,
manifest GET/HEAD/PUT and tag listing. 5xx/429 answers are retried with backoff; 401/403/404
become errors naming the method and URL.

Loopback registries (127.0.0.1, ::1, localhost) and `insecure=True` use plain http, like cosign's
`--allow-insecure-registry` against a local registry.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlencode, urljoin, urlsplit

import requests

from distroless import neterrors
from distroless.errors import RegistryAuthError, RegistryError, RegistryNotFoundError
from distroless.oci.image import Descriptor, sha256_digest
from distroless.oci.mediatypes import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, INDEX_TYPES, MANIFEST_TYPES, OCI_INDEX, OCI_MANIFEST  # noqa: F401
from distroless.registry.reference import DOCKER_HUB, Reference

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
DEFAULT_CHUNK = 16 << 20
USER_AGENT = "distroless"


# --------------------------------------------------------------------------- credentials


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    password: str = field(repr=False)  # never printed
    identity_token: str = field(default="", repr=False)  # OAuth2 refresh token (docker's identitytoken)

    def basic(self) -> str:
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()


HUB_SERVER_URL = "https://index.docker.io/v1/"  # the key docker uses for Docker Hub
TOKEN_USERNAME = "<token>"  # a helper's Username meaning "Secret is an identity token"
HELPER_TIMEOUT = 30.0
HELPER_MAX_OUTPUT = 1 << 20


def _config_host(key: str) -> str:
    """`https://index.docker.io/v1/` -> `index.docker.io`; `host:port` stays."""
    if "://" in key:
        key = urlsplit(key).netloc
    return key.split("/", 1)[0]


def _wanted_hosts(registry: str) -> set[str]:
    return {registry} | ({"docker.io", "registry-1.docker.io"} if registry == DOCKER_HUB else set())


def run_credential_helper(helper: str, server_url: str, source: str) -> Credentials | None:
    """docker's credential-helper protocol: `docker-credential-<helper> get`, the server URL on
    stdin, `{"ServerURL","Username","Secret"}` on stdout; "credentials not found" means none.
    The helper's output is never echoed in errors (it may hold the secret)."""
    exe = shutil.which(f"docker-credential-{helper}")
    if exe is None:
        raise RegistryError(f"{source}: credential helper docker-credential-{helper} is not on PATH")
    try:
        proc = subprocess.run([exe, "get"], input=server_url.encode(), capture_output=True,
                              timeout=HELPER_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise RegistryError(f"docker-credential-{helper} get {server_url}: no answer in {HELPER_TIMEOUT:.0f} s") from None
    except OSError as e:
        raise RegistryError(f"docker-credential-{helper}: cannot run: {e.strerror or e}") from e
    out = proc.stdout[:HELPER_MAX_OUTPUT]
    if proc.returncode != 0:
        if b"credentials not found" in out.lower() or b"credentials not found" in proc.stderr.lower():
            return None
        raise RegistryError(f"docker-credential-{helper} get {server_url}: exited {proc.returncode}")
    try:
        obj = json.loads(out)
        user, secret = obj.get("Username", ""), obj.get("Secret", "")
        if not isinstance(user, str) or not isinstance(secret, str):
            raise ValueError
    except (ValueError, AttributeError):
        raise RegistryError(f"docker-credential-{helper} get {server_url}: answer is not "
                            '{"Username","Secret"} JSON') from None
    if user == TOKEN_USERNAME:
        return Credentials("", "", identity_token=secret)
    return Credentials(user, secret) if (user or secret) else None


def _helper_server_urls(registry: str, config_keys: Iterable[str]) -> list[str]:
    """What to ask a helper for: docker's key for Docker Hub, else the host, plus any config key
    naming the same host (helpers store what `docker login` was given)."""
    first = HUB_SERVER_URL if registry == DOCKER_HUB else registry
    others = [k for k in config_keys if _config_host(k) in _wanted_hosts(registry) and k != first]
    return [first, *others]


def credentials_from_docker_config(registry: str, path: Path) -> Credentials | None:
    """docker's lookup order in the config.json at `path` (the front door finds it):
    `credHelpers[host]`, else `credsStore` (both through the `docker-credential-*` protocol),
    else `auths` (`auth` = base64 `user:password`, the `username`/`password` fields, or
    `identitytoken`)."""
    try:
        obj = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise RegistryError(f"{path}: cannot read docker config: {e}") from e
    if not isinstance(obj, dict):
        raise RegistryError(f"{path}: docker config is not a JSON object")
    auths = obj.get("auths") or {}
    wanted = _wanted_hosts(registry)
    helpers = obj.get("credHelpers") or {}
    helper = next((h for k, h in helpers.items() if _config_host(k) in wanted), None) or obj.get("credsStore")
    if helper:
        if not isinstance(helper, str) or not re.fullmatch(r"[A-Za-z0-9._-]+", helper):
            raise RegistryError(f"{path}: credential helper name {helper!r} is not a plain name")
        for url in _helper_server_urls(registry, auths):
            found = run_credential_helper(helper, url, str(path))
            if found is not None:
                return found
    for key, entry in auths.items():
        if _config_host(key) not in wanted or not isinstance(entry, dict):
            continue
        if entry.get("identitytoken"):
            return Credentials(str(entry.get("username") or ""), "", identity_token=str(entry["identitytoken"]))
        if entry.get("auth"):
            try:
                user, _, pw = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError) as e:
                raise RegistryError(f"{path}: auths[{key!r}].auth is not base64 user:password") from e
            return Credentials(user, pw)
        if entry.get("username"):
            return Credentials(entry["username"], entry.get("password", ""))
    return None


def _may_send_secret(realm: str, registry: str) -> bool:
    """Secrets go over https, or plain http only to the registry's own host or loopback."""
    parts = urlsplit(realm)
    if parts.scheme == "https":
        return True
    host = parts.hostname or ""
    return parts.scheme == "http" and (host in LOOPBACK or host.startswith("127.")
                                       or host == registry.rsplit(":", 1)[0])


# --------------------------------------------------------------------------- challenges

_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^,\s]*))')


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  # "bearer" / "basic"
    params: Mapping[str, str]


def parse_challenge(header: str) -> Challenge | None:
    scheme, _, rest = header.strip().partition(" ")
    if not scheme:
        return None
    params = {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
              for m in _PARAM.finditer(rest)}
    return Challenge(scheme.lower(), params)


def _error_detail(resp: requests.Response) -> str:
    try:
        errs = resp.json().get("errors") or []
        text = "; ".join(f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in errs)
        if text:
            return text
    except (ValueError, AttributeError):
        pass
    return (resp.text or "").strip()[:200]


# --------------------------------------------------------------------------- blob sources


@dataclass(frozen=True, slots=True)
class BlobSource:
    """Blob bytes in memory or in a file; opened at an offset so uploads can resume."""

    size: int
    data: bytes | None = None
    path: Path | None = None

    @classmethod
    def of(cls, data: bytes) -> BlobSource:
        return cls(len(data), data=data)

    @classmethod
    def file(cls, path: str | os.PathLike[str]) -> BlobSource:
        p = Path(path)
        return cls(p.stat().st_size, path=p)

    def read(self, offset: int, length: int) -> bytes:
        if self.data is not None:
            return self.data[offset : offset + length]
        assert self.path is not None
        with open(self.path, "rb") as f:
            f.seek(offset)
            return f.read(length)

    def stream(self) -> BinaryIO:
        if self.data is not None:
            return io.BytesIO(self.data)
        assert self.path is not None
        return open(self.path, "rb")


@dataclass(frozen=True, slots=True)
class Manifest:
    raw: bytes
    media_type: str
    digest: str

    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, len(self.raw), self.digest)


def _media_type_of(raw: bytes, header: str) -> str:
    header = (header or "").split(";", 1)[0].strip()
    if header in MANIFEST_TYPES:
        return header
    try:
        mt = json.loads(raw).get("mediaType")
    except (ValueError, AttributeError):
        mt = None
    return mt or header


# --------------------------------------------------------------------------- the client


class RegistryClient:
    """One registry host. Thread-unsafe (token cache); make one per thread if needed."""

    def __init__(
        self,
        registry: str,
        *,
        insecure: bool | None = None,
        credentials: Credentials | None = None,
        docker_config: Path | None = None,  # docker's config.json to take credentials from
        session: requests.Session | None = None,
        retries: int = 5,
        backoff: float = 0.5,
        timeout: float = 60.0,
        chunk_size: int = DEFAULT_CHUNK,
        monolithic_limit: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.registry = registry
        host = registry.rsplit(":", 1)[0] if not registry.endswith("]") else registry
        loopback = host in LOOPBACK or host.startswith("127.")
        self.scheme = "http" if (insecure or (insecure is None and loopback)) else "https"
        api_host = "registry-1.docker.io" if registry == DOCKER_HUB else registry
        self.base = f"{self.scheme}://{api_host}"
        if credentials is None and docker_config is not None:
            credentials = credentials_from_docker_config(registry, docker_config)
        self.credentials = credentials
        self.session = session or requests.Session()
        self.session.headers.setdefault("User-Agent", USER_AGENT)
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.chunk_size = chunk_size
        self.monolithic_limit = chunk_size if monolithic_limit is None else monolithic_limit
        self._sleep = sleep
        self._tokens: dict[str, str] = {}
        self._challenge: Challenge | None = None
        self.upload_events: list[str] = []  # "resumed <digest> at N" / "restarted <digest>": for logs/tests

    @classmethod
    def for_reference(cls, ref: Reference, **kw) -> RegistryClient:
        return cls(ref.registry, **kw)

    # ----------------------------------------------------------------- plumbing

    def url(self, path: str) -> str:
        return self.base + path

    def _same_origin(self, url: str) -> bool:
        """Credentials and tokens are for this registry's scheme, host and port only: an upload
        `Location` or redirect naming any other origin is followed without them."""
        base, other = urlsplit(self.base), urlsplit(url)
        return (other.scheme, other.netloc.lower()) == (base.scheme, base.netloc.lower())

    def _auth_header(self, scope: str) -> str | None:
        if scope in self._tokens:
            return "Bearer " + self._tokens[scope]
        if self._challenge is not None and self._challenge.scheme == "basic" and self.credentials:
            return self.credentials.basic()
        return None

    def _fetch_token(self, challenge: Challenge, scope: str, url: str) -> None:
        realm = challenge.params.get("realm")
        if not realm:
            raise RegistryAuthError(f"{url}: 401 with a Bearer challenge without realm")
        query: list[tuple[str, str]] = []
        if challenge.params.get("service"):
            query.append(("service", challenge.params["service"]))
        for s in scope.split(" "):
            if s:
                query.append(("scope", s))
        creds = self.credentials
        if creds is not None and not _may_send_secret(realm, self.registry):
            raise RegistryAuthError(f"{url}: the registry asks for credentials at {realm}, a plain-http "
                                    "address off this host; refusing to send them there")
        try:
            if creds is not None and creds.identity_token:
                # docker's identity-token flow: OAuth2 refresh-token grant (distribution token spec)
                form = {"grant_type": "refresh_token", "refresh_token": creds.identity_token,
                        "client_id": USER_AGENT, "scope": scope}
                if challenge.params.get("service"):
                    form["service"] = challenge.params["service"]
                resp = self.session.post(realm, data=form, timeout=self.timeout)
            else:
                headers = {"Authorization": creds.basic()} if creds else {}
                resp = self.session.get(realm, params=query, headers=headers, timeout=self.timeout)
        except requests.RequestException as e:
            raise RegistryAuthError(f"token request to {realm}: {neterrors.describe(e, realm)}") from e
        if resp.status_code != 200:
            raise RegistryAuthError(
                f"token request to {realm} for {scope!r}: {resp.status_code} {_error_detail(resp)}"
            )
        try:
            body = resp.json()
            token = body.get("token") or body.get("access_token")
        except (ValueError, AttributeError):
            raise RegistryAuthError(f"token response from {realm} is not JSON with a token") from None
        if not token:
            raise RegistryAuthError(f"token response from {realm} has no token")
        self._tokens[scope] = token

    def request(
        self,
        method: str,
        url: str,
        *,
        scope: str,
        ok: Iterable[int] = (200,),
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
        what: str = "",
        allow_redirects: bool = True,
        retry: bool = True,
        stream: bool = False,
    ) -> requests.Response:
        """Send with auth and retries; return a response whose status is in `ok`, else raise.
        `retry=False` for requests that must not be replayed blindly (upload chunks)."""
        ok = tuple(ok)
        label = f"{method} {url}" + (f" ({what})" if what else "")
        auth_tried = False
        attempt = 0
        while True:
            h = dict(headers or {})
            auth = self._auth_header(scope) if self._same_origin(url) else None
            if auth:
                h["Authorization"] = auth
            try:
                resp = self.session.request(method, url, headers=h, data=data, timeout=self.timeout,
                                            allow_redirects=allow_redirects, stream=stream)
            except requests.RequestException as e:
                if retry and attempt < self.retries:
                    self._sleep(self.backoff * (2 ** attempt))
                    attempt += 1
                    continue
                raise RegistryError(f"{label}: {neterrors.describe(e, url)}") from e
            if resp.status_code in ok:
                return resp
            if resp.status_code == 401 and not auth_tried and self._same_origin(url):
                challenge = parse_challenge(resp.headers.get("WWW-Authenticate", ""))
                if challenge is not None:
                    self._challenge = challenge
                    auth_tried = True
                    if challenge.scheme == "bearer":
                        self._fetch_token(challenge, scope, url)
                        continue
                    if challenge.scheme == "basic" and self.credentials:
                        continue
            if retry and resp.status_code in RETRY_STATUS and attempt < self.retries:
                delay = self.backoff * (2 ** attempt)
                ra = resp.headers.get("Retry-After", "")
                if ra.isdigit():
                    delay = max(delay, min(float(ra), 60.0))
                self._sleep(delay)
                attempt += 1
                continue
            detail = _error_detail(resp)
            tail = f": {detail}" if detail else ""
            if resp.status_code == 401:
                hint = "" if self.credentials else " (no credentials for this registry in docker config.json)"
                raise RegistryAuthError(f"{label}: 401 unauthorized{hint}{tail}")
            if resp.status_code == 403:
                raise RegistryAuthError(f"{label}: 403 forbidden{tail}")
            if resp.status_code == 404:
                raise RegistryNotFoundError(f"{label}: 404 not found{tail}")
            raise RegistryError(f"{label}: HTTP {resp.status_code}{tail}")

    @staticmethod
    def pull_scope(repo: str) -> str:
        return f"repository:{repo}:pull"

    @staticmethod
    def push_scope(repo: str, *mount_from: str) -> str:
        return " ".join([f"repository:{repo}:pull,push", *(f"repository:{m}:pull" for m in mount_from)])

    # ----------------------------------------------------------------- API

    def ping(self) -> None:
        """GET /v2/: 200, or 401 with a challenge (auth then happens per repository)."""
        try:
            resp = self.session.get(self.url("/v2/"), timeout=self.timeout)
        except requests.RequestException as e:
            raise RegistryError(f"registry {self.registry} ({self.url('/v2/')}): "
                                f"{neterrors.describe(e, self.base)}") from e
        if resp.status_code == 401:
            self._challenge = parse_challenge(resp.headers.get("WWW-Authenticate", ""))
            return
        if resp.status_code != 200:
            raise RegistryError(f"GET {self.url('/v2/')}: HTTP {resp.status_code}: not a v2 registry")

    def blob_exists(self, repo: str, digest: str) -> bool:
        url = self.url(f"/v2/{repo}/blobs/{digest}")
        try:
            self.request("HEAD", url, scope=self.pull_scope(repo), ok=(200,))
            return True
        except RegistryNotFoundError:
            return False

    def get_blob(self, repo: str, digest: str, *, max_size: int = 256 << 20) -> bytes:
        url = self.url(f"/v2/{repo}/blobs/{digest}")
        resp = self.request("GET", url, scope=self.pull_scope(repo))
        data = resp.content
        if len(data) > max_size:
            raise RegistryError(f"GET {url}: blob larger than {max_size} bytes")
        if sha256_digest(data) != digest:
            raise RegistryError(f"GET {url}: content does not match {digest}")
        return data

    def download_blob(self, repo: str, desc: Descriptor, dest: Path) -> None:
        """Stream a blob to `dest` (temp + rename), checking size and digest before it lands:
        a layer never sits in memory and a wrong byte never gets the blob's name."""
        url = self.url(f"/v2/{repo}/blobs/{desc.digest}")
        resp = self.request("GET", url, scope=self.pull_scope(repo), stream=True)
        h = hashlib.sha256()
        n = 0
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
        try:
            with resp, open(tmp, "wb") as out:
                for chunk in resp.iter_content(1 << 20):
                    n += len(chunk)
                    if n > desc.size:
                        raise RegistryError(f"GET {url}: more than the {desc.size} bytes its descriptor says")
                    h.update(chunk)
                    out.write(chunk)
            if n != desc.size or f"sha256:{h.hexdigest()}" != desc.digest:
                raise RegistryError(f"GET {url}: content does not match {desc.digest} ({n} bytes)")
            os.replace(tmp, dest)
        except requests.RequestException as e:
            raise RegistryError(f"GET {url}: {neterrors.describe(e, url)}") from e
        finally:
            tmp.unlink(missing_ok=True)

    def _location(self, resp: requests.Response, url: str) -> str:
        loc = resp.headers.get("Location")
        if not loc:
            raise RegistryError(f"{resp.request.method} {url}: no Location header in {resp.status_code} answer")
        return urljoin(url, loc)

    @staticmethod
    def _with_query(url: str, params: Mapping[str, str]) -> str:
        return url + ("&" if urlsplit(url).query else "?") + urlencode(params)

    def start_upload(self, repo: str, mount_from: Sequence[str] = ()) -> str:
        url = self.url(f"/v2/{repo}/blobs/uploads/")
        resp = self.request("POST", url, scope=self.push_scope(repo, *mount_from), ok=(202,),
                            headers={"Content-Length": "0"})
        return self._location(resp, url)

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        """Cross-repository mount; False (and the offered upload abandoned) when not mounted."""
        url = self._with_query(self.url(f"/v2/{repo}/blobs/uploads/"), {"mount": digest, "from": from_repo})
        resp = self.request("POST", url, scope=self.push_scope(repo, from_repo), ok=(201, 202),
                            headers={"Content-Length": "0"})
        if resp.status_code == 201:
            return True
        try:  # the registry started a normal upload instead; don't leave it dangling
            loc = self._location(resp, url)
            headers = self._auth_headers(self.push_scope(repo, from_repo)) if self._same_origin(loc) else {}
            self.session.delete(loc, timeout=self.timeout, headers=headers)
        except (requests.RequestException, RegistryError):
            pass
        return False

    def _auth_headers(self, scope: str) -> dict[str, str]:
        auth = self._auth_header(scope)
        return {"Authorization": auth} if auth else {}

    def upload_status(self, repo: str, location: str) -> tuple[int, str]:
        """(bytes the registry holds, a fresh upload URL): GET on the upload URL, `Range: 0-N`."""
        resp = self.request("GET", location, scope=self.push_scope(repo), ok=(204,), what="upload status")
        rng = resp.headers.get("Range", "")
        m = re.fullmatch(r"(?:bytes=)?0-(\d+)", rng.strip())
        if not m:
            raise RegistryError(f"GET {location}: upload status without a Range header")
        end = int(m.group(1))
        # distribution reports "0-0" for an empty upload too; 0 is the safe reading.
        held = 0 if end == 0 else end + 1
        return held, urljoin(location, resp.headers.get("Location") or location)

    def _finish_upload(self, repo: str, location: str, digest: str, body: bytes | None) -> None:
        url = self._with_query(location, {"digest": digest})
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(len(body or b""))}
        resp = self.request("PUT", url, scope=self.push_scope(repo), ok=(201, 204), headers=headers,
                            data=body or b"", what=f"blob {digest}", retry=False)
        got = resp.headers.get("Docker-Content-Digest")
        if got and got != digest:
            raise RegistryError(f"PUT {url}: registry stored {got}, expected {digest}")

    def upload_blob(self, repo: str, digest: str, source: BlobSource) -> None:
        """Monolithic (POST + PUT) up to `monolithic_limit`, else chunked PATCHes that resume."""
        if source.size <= self.monolithic_limit:
            last: Exception | None = None
            for attempt in range(self.retries + 1):
                try:
                    loc = self.start_upload(repo)
                    self._finish_upload(repo, loc, digest, source.read(0, source.size))
                    return
                except RegistryError as e:
                    if isinstance(e, (RegistryAuthError, RegistryNotFoundError)):
                        raise
                    last = e
                    self._sleep(self.backoff * (2 ** attempt))
            raise RegistryError(f"upload of blob {digest} to {self.registry}/{repo} failed: {last}")
        self._chunked_upload(repo, digest, source)

    def _chunked_upload(self, repo: str, digest: str, source: BlobSource) -> None:
        location = self.start_upload(repo)
        offset = 0
        failures = 0
        while offset < source.size:
            chunk = source.read(offset, min(self.chunk_size, source.size - offset))
            end = offset + len(chunk) - 1
            headers = {
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{offset}-{end}",
                "Content-Length": str(len(chunk)),
            }
            try:
                resp = self.request("PATCH", location, scope=self.push_scope(repo), ok=(202,),
                                    headers=headers, data=chunk, what=f"blob {digest} bytes {offset}-{end}",
                                    retry=False)
                location = self._location(resp, location)
                offset = end + 1
                continue
            except RegistryAuthError:
                raise
            except RegistryError as e:
                failures += 1
                if failures > self.retries:
                    raise RegistryError(
                        f"upload of blob {digest} to {self.registry}/{repo} failed after "
                        f"{failures} attempts at byte {offset}: {e}"
                    ) from e
                self._sleep(self.backoff * (2 ** (failures - 1)))
            # Ask the registry how much it kept; resume there, or start over if it lost the upload.
            try:
                offset, location = self.upload_status(repo, location)
                self.upload_events.append(f"resumed {digest} at {offset}")
            except RegistryAuthError:
                raise
            except RegistryError:  # the registry lost or invalidated the upload: start over
                location = self.start_upload(repo)
                offset = 0
                self.upload_events.append(f"restarted {digest}")
        try:
            self._finish_upload(repo, location, digest, None)
        except RegistryAuthError:
            raise
        except RegistryError:
            # The commit may have landed before the connection dropped: the blob then exists.
            if not self.blob_exists(repo, digest):
                raise

    def push_blob(self, repo: str, digest: str, source: BlobSource,
                  mount_from: Sequence[str] = ()) -> str:
        """HEAD first; then try mounting from each same-registry repository; else upload.
        Returns "exists", "mounted" or "uploaded"."""
        if self.blob_exists(repo, digest):
            return "exists"
        for other in mount_from:
            if other != repo and self.mount_blob(repo, digest, other):
                return "mounted"
        self.upload_blob(repo, digest, source)
        return "uploaded"

    # ----------------------------------------------------------------- manifests

    def get_manifest(self, repo: str, ref: str, accept: Sequence[str] = MANIFEST_TYPES) -> Manifest:
        url = self.url(f"/v2/{repo}/manifests/{ref}")
        resp = self.request("GET", url, scope=self.pull_scope(repo), headers={"Accept": ", ".join(accept)})
        raw = resp.content
        digest = sha256_digest(raw)
        if ref.startswith("sha256:") and digest != ref:
            raise RegistryError(f"GET {url}: manifest content does not match {ref}")
        return Manifest(raw, _media_type_of(raw, resp.headers.get("Content-Type", "")), digest)

    def head_manifest(self, repo: str, ref: str, accept: Sequence[str] = MANIFEST_TYPES) -> Descriptor | None:
        url = self.url(f"/v2/{repo}/manifests/{ref}")
        try:
            resp = self.request("HEAD", url, scope=self.pull_scope(repo), headers={"Accept": ", ".join(accept)})
        except RegistryNotFoundError:
            return None
        digest = resp.headers.get("Docker-Content-Digest")
        if not digest:  # some registries omit it on HEAD: fall back to GET
            return self.get_manifest(repo, ref, accept).descriptor()
        return Descriptor((resp.headers.get("Content-Type") or "").split(";")[0],
                          int(resp.headers.get("Content-Length") or 0), digest)

    def put_manifest(self, repo: str, ref: str, raw: bytes, media_type: str | None = None) -> str:
        """PUT by tag or digest with the manifest's own media type; returns its digest."""
        if media_type is None:
            media_type = _media_type_of(raw, "")
        if not media_type:
            raise RegistryError(f"manifest for {self.registry}/{repo}:{ref} has no mediaType")
        digest = sha256_digest(raw)
        if ref.startswith("sha256:") and ref != digest:
            raise RegistryError(f"manifest bytes are {digest}, not {ref}")
        url = self.url(f"/v2/{repo}/manifests/{ref}")
        resp = self.request("PUT", url, scope=self.push_scope(repo), ok=(200, 201, 202),
                            headers={"Content-Type": media_type}, data=raw)
        got = resp.headers.get("Docker-Content-Digest")
        if got and got != digest:
            raise RegistryError(f"PUT {url}: registry computed {got}, expected {digest}")
        return digest

    def list_tags(self, repo: str) -> list[str]:
        url: str | None = self.url(f"/v2/{repo}/tags/list")
        tags: list[str] = []
        while url:
            resp = self.request("GET", url, scope=self.pull_scope(repo))
            tags.extend(resp.json().get("tags") or [])
            link = resp.headers.get("Link", "")
            m = re.match(r'\s*<([^>]+)>\s*;\s*rel="?next"?', link)
            url = urljoin(url, m.group(1)) if m else None
        return tags

