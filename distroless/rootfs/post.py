"""The steps after package installation, in apko's order (apko.md §2.7–2.8).

accounts → paths → certificates → CA-bundle sidecars → runtime keys → s6 services → busybox links
→ device nodes → ld.so.cache. Files apko creates carry mtime 0, except the certificate, sidecar
and runtime-key files, which carry the build date (BDE).
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Sequence
from dataclasses import replace


from distroless.apk.model import Package
from distroless.config import ImageConfig, PathMutation, User
from distroless.errors import DistrolessError
from distroless.rootfs import busybox
from distroless.rootfs import certs as truststore
from distroless.rootfs.install import add_devices
from distroless.rootfs.ldso import write_ld_so_cache
from distroless.rootfs.tree import Node, Tree

PASSWD_GECOS = "Account created by apko"


class PostInstallError(DistrolessError):
    pass


def _read(tree: Tree, path: str) -> str | None:
    node = tree.get(path, follow=True)
    if node is None or node.type != "reg":
        return None
    return node.data().decode("utf-8", "replace")


def _rows(text: str | None) -> list[list[str]]:
    return [line.split(":") for line in (text or "").splitlines() if line and not line.startswith("#")]


def _write(tree: Tree, path: str, rows: list[list[str]], mode: int) -> None:
    existing = tree.get(path, follow=True)
    data = "".join(":".join(r) + "\n" for r in rows).encode()
    node = tree.write_file(path, data, mode=existing.mode if existing is not None else mode)
    node.mtime = 0


def accounts(tree: Tree, config: ImageConfig) -> ImageConfig:
    """Rewrite passwd (always), group (when groups are set), shadow (when users are set), create
    missing home directories, and return the config with `run-as` made numeric."""
    acc = config.accounts
    passwd = [r + [""] * (7 - len(r)) for r in _rows(_read(tree, "etc/passwd"))]
    names = {r[0] for r in passwd}
    for u in acc.users:
        if u.username not in names:
            passwd.append([u.username, "x", str(u.uid), str(u.primary_gid), PASSWD_GECOS, _home(u), u.login_shell])
            names.add(u.username)
    _write(tree, "etc/passwd", passwd, 0o644)
    if acc.groups:
        group = _rows(_read(tree, "etc/group"))
        have = {r[0] for r in group}
        for g in acc.groups:
            if g.groupname not in have:
                group.append([g.groupname, "x", str(g.gid), ",".join(g.members)])
        _write(tree, "etc/group", group, 0o644)
    if acc.users:
        # apko's shadow parser drops the third field (lastchg) of existing entries on rewrite.
        shadow = [[r[0], r[1] if len(r) > 1 else "!", "", *(r[3:] + [""] * 6)[:6]] for r in _rows(_read(tree, "etc/shadow"))]
        have = {r[0] for r in shadow}
        for u in acc.users:
            if u.username not in have:
                shadow.append([u.username, "!", "", "", "", "", "", "", ""])
        _write(tree, "etc/shadow", shadow, 0o640)
    for row in passwd:
        home = row[5]
        if home and home != "/dev/null" and tree.get(home, follow=True) is None:
            parent = posixpath.dirname(home.rstrip("/"))
            if parent not in ("", "/"):
                tree.mkdir_all(parent, 0o755)
            node = tree.put(home, Node("dir", 0o700, children={}))
            node.uid, node.gid = _int(row[2]), _int(row[3])
    run_as = acc.run_as
    uid = {r[0]: r[2] for r in passwd}.get(run_as)
    if uid is not None:
        run_as = uid
    return replace(config, accounts=replace(acc, run_as=run_as))


def _home(u: User) -> str:
    return u.homedir or f"/home/{u.username}"


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0


def paths(tree: Tree, mutations: tuple[PathMutation, ...]) -> None:
    for m in mutations:
        where = f"paths: {m.path}"
        if m.type == "directory":
            tree.mkdir_all(m.path, m.permissions & 0o777)
        elif m.type == "empty-file":
            parent = posixpath.dirname(m.path.strip("/"))
            if parent:
                tree.mkdir_all(parent, 0o755)
            tree.write_file(m.path, b"")
        elif m.type == "hardlink":
            src = tree.get(m.source, follow=True)
            if src is None or src.type != "reg":
                raise PostInstallError(f"{where}: hardlink source {m.source} is not a regular file")
            if tree.get(m.path) is not None:
                tree.remove(m.path)
            # apko does not remember these links: they come out as full copies in the layer
            tree.put(m.path, replace(src, xattrs=dict(src.xattrs)))
        elif m.type == "symlink":
            tree.put(m.path, Node("sym", 0o777, linkname=m.source))
        elif m.type != "permissions":
            raise PostInstallError(f"{where}: unknown path type {m.type!r}")
        _chmod(tree, m, where)


def _chmod(tree: Tree, m: PathMutation, where: str) -> None:
    """Every mutation ends with apko's permissions step: chmod (following symlinks) to
    `permissions` (0 when omitted), chown when uid or gid is given (an explicit 0 included),
    recursively if asked."""
    node = tree.get(m.path, follow=True)
    if node is None:
        raise PostInstallError(f"{where}: no such path to set permissions on")
    targets = [node]
    if m.recursive and node.type == "dir":
        stack = [node]
        while stack:
            for child in (stack.pop().children or {}).values():
                targets.append(child)
                if child.type == "dir":
                    stack.append(child)
    for n in targets:
        if n.type == "sym":
            continue
        n.mode = m.permissions & 0o7777
        if m.uid is not None or m.gid is not None:  # one given: the other is root, as apko
            n.uid, n.gid = m.uid or 0, m.gid or 0


CA_CERTS_DIR = "usr/local/share/ca-certificates"
# apko appends to each of these that exists (it never creates one); the truststore is Java's.
PEM_BUNDLES = ("etc/ssl/certs/ca-certificates.crt",
               "var/lib/ecs/deps/execute-command/certs/tls-ca-bundle.pem",
               "kaniko/ssl/certs/ca-certificates.crt")
TRUSTSTORES = ("etc/ssl/certs/java/cacerts",)


def _one_certificate(text: bytes) -> tuple[bytes, bytes] | None:
    """(PEM re-encoded, DER) of the single CERTIFICATE block in `text`; None when there is
    no block, more than one, another block type, or an unparsable certificate."""
    blocks = list(_PEM_BLOCK.finditer(text))
    if len(blocks) != 1 or blocks[0].group(1) != b"CERTIFICATE":
        return None
    from cryptography import x509  # here: most images have no certificates to parse (start-up)
    from cryptography.hazmat.primitives import serialization

    try:
        cert = x509.load_pem_x509_certificate(blocks[0].group(0))
    except ValueError:
        return None
    return cert.public_bytes(serialization.Encoding.PEM), cert.public_bytes(serialization.Encoding.DER)


_PEM_BLOCK = re.compile(rb"(?s)-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----")


def provider_cert_files(installed: Sequence[tuple[Package, list[str]]], providers: tuple[str, ...]) -> list[str]:
    """apko's providers: files of installed packages that provide one of `providers` (a provide
    string equal to it), under usr/local/share/ca-certificates/ and ending .crt or .pem, sorted."""
    wanted = set(providers)
    out = []
    for pkg, files in installed:
        if wanted.intersection(pkg.provides):
            out.extend(f for f in files if f.startswith(CA_CERTS_DIR + "/")
                       and posixpath.splitext(f)[1] in (".crt", ".pem"))
    return sorted(out, key=lambda f: f.encode())


def certificates(tree: Tree, config: ImageConfig, bde: int,
                 installed: Sequence[tuple[Package, list[str]]] = ()) -> None:
    """Certificates from the config (`additional`: written to
    `usr/local/share/ca-certificates/<name>-<sha256 of DER>.crt`) and from installed packages
    that provide a `providers` name (their .crt/.pem files; unparsable ones skipped), appended
    in that order, re-encoded as PEM plus a newline, to every CA bundle that exists and to an
    existing Java truststore (aliases `<name>-<fp>` and `pkg-<fp>`)."""
    certs = config.certificates
    if certs is None:
        return
    found: list[tuple[str, bytes, bytes]] = []  # (alias, PEM, DER)
    if certs.additional:
        tree.mkdir_all(CA_CERTS_DIR, 0o755)
    for c in certs.additional:
        parsed = _one_certificate(c.content.encode())
        if parsed is None:
            raise PostInstallError(f"certificates.additional: {c.name}: not a single PEM certificate")
        pem, der = parsed
        fingerprint = hashlib.sha256(der).hexdigest()
        tree.write_file(f"{CA_CERTS_DIR}/{c.name}-{fingerprint}.crt", pem, mtime=bde)
        found.append((f"{c.name}-{fingerprint}", pem, der))
    for path in provider_cert_files(installed, certs.providers):
        node = tree.get(path, follow=True)
        if node is None or node.type != "reg":
            raise PostInstallError(f"certificates.providers: /{path} is listed by a package but missing")
        parsed = _one_certificate(node.data())
        if parsed is not None:  # apko skips what it cannot parse
            pem, der = parsed
            found.append((f"pkg-{hashlib.sha256(der).hexdigest()}", pem, der))
    if not found:
        return
    for bundle_path in PEM_BUNDLES:
        bundle = tree.get(bundle_path, follow=True)
        if bundle is None or bundle.type != "reg":
            continue
        data = bundle.data() + b"".join(pem + b"\n" for _, pem, _ in found)
        tree.write_file(bundle_path, data, mode=bundle.mode, mtime=bde)
    for store_path in TRUSTSTORES:
        store = tree.get(store_path, follow=True)
        if store is not None and store.type == "reg":  # apko updates a truststore, never creates one
            data = truststore.add_to_truststore(store.data(), [(a, der) for a, _, der in found], bde)
            tree.write_file(store_path, data, mode=store.mode, mtime=bde)


def bundle_sidecars(tree: Tree, bde: int) -> None:
    """`.<name>.sha256` beside each CA bundle or truststore that exists (apko does this always)."""
    for path in PEM_BUNDLES + TRUSTSTORES:
        node = tree.get(path, follow=True)
        if node is None or node.type != "reg":
            continue
        base = posixpath.basename(path)
        text = f"{hashlib.sha256(node.data()).hexdigest()}  {base}\n".encode()
        tree.write_file(f"{posixpath.dirname(path)}/.{base}.sha256", text, mode=0o444, mtime=bde)


def runtime_keyring(tree: Tree, config: ImageConfig, bde: int) -> None:
    for key in sorted(config.contents.runtime_keyring, key=lambda k: k.name):
        path = f"etc/apk/keys/{key.name}"
        if tree.get(path) is not None:
            raise PostInstallError(f"contents.runtime_keyring: {key.name} collides with an existing key")
        tree.write_file(path, key.content.encode(), mtime=bde)


def services(tree: Tree, config: ImageConfig) -> None:
    """s6 supervision tree for `entrypoint.type: service-bundle`."""
    for name, command in sorted((config.entrypoint.services or {}).items()):
        tree.mkdir_all(f"sv/{name}", 0o777)
        tree.write_file(f"sv/{name}/run", f"#!/bin/execlineb\n{command}\n".encode(), mode=0o755)


def busybox_links(tree: Tree, installed: list[Package]) -> None:
    """Absolute links to /bin/busybox: from `/etc/busybox-paths.d/<package>` when the busybox
    package ships it, else apko's table for that busybox version. Existing files and links are
    left alone; parent directories take busybox's mtime."""
    bb = tree.get("bin/busybox", follow=True)
    if bb is None:
        return
    owner = next((p for p in installed if p.name == "busybox" or any("busybox" in x for x in p.provides)), None)
    if owner is None:
        return
    listing = _read(tree, f"etc/busybox-paths.d/{owner.name}")
    paths = listing.splitlines() if listing is not None else busybox.busybox_paths(owner.version)
    for line in paths:
        path = line.strip()
        if not path.startswith("/") or tree.get(path) is not None:
            continue
        parent = posixpath.dirname(path)
        if tree.get(parent, follow=True) is None:
            tree.mkdir_all(parent, 0o755).mtime = bb.mtime
        tree.put(path, Node("sym", 0o777, linkname="/bin/busybox", mtime=bb.mtime))


def devices(tree: Tree) -> None:
    add_devices(tree)


def ld_so_cache(tree: Tree) -> None:
    write_ld_so_cache(tree)


def missing_files(tree: Tree, config: ImageConfig) -> list[str]:
    """Warnings about files the image's own settings need (the engine reports them as events).
    An image without a base layout is normal (a static binary needs none); only when
    `accounts` declares users does a missing /etc/group matter: their primary gids resolve
    nowhere, and tools that look groups up fail."""
    acc = config.accounts
    if not acc.users or tree.get("etc/group", follow=True) is not None:
        return []
    gids = sorted({u.primary_gid for u in acc.users})
    return [f"/etc/group is missing, but accounts.users need groups (gid {', '.join(map(str, gids))}): "
            "add accounts.groups or a base layout package that ships /etc/group"]