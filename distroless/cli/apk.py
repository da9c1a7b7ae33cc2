"""`keygen` and `package create|index|sign|verify|info`: the APK format verbs (melange's flags)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import json
import os
from dataclasses import asdict
from pathlib import Path

from distroless import epoch
from distroless.apk import index, keys, package, resign
from distroless.apk.model import Package
from distroless.errors import DistrolessError, FormatError


def source_date_epoch() -> int:
    """SOURCE_DATE_EPOCH from the environment (blank or unset means 0)."""
    return epoch.parse_or(os.environ.get(epoch.NAME), 0)


def register(sub: argparse._SubParsersAction, words: Sequence[str] | None = None) -> None:  # noqa: ARG001
    p = sub.add_parser("keygen", help="generate an RSA key pair for signing packages and indexes")
    p.add_argument("name", nargs="?", default="melange.rsa", help="private key path (public: NAME.pub); default melange.rsa as melange")
    p.add_argument("--key-size", type=int, default=keys.DEFAULT_BITS, help=f"RSA key size in bits (default {keys.DEFAULT_BITS})")
    p.set_defaults(func=cmd_keygen)

    pkg = sub.add_parser("package", help="create, index, sign, verify and inspect APK packages")
    psub = pkg.add_subparsers(dest="package_command", required=True, metavar="VERB")

    c = psub.add_parser("create", help="pack a directory tree into an .apk")
    c.add_argument("dir", type=Path, help="the directory whose tree becomes the package contents")
    c.add_argument("--name", required=True, help="package name (P:)")
    c.add_argument("--version", required=True, help="package version, e.g. 1.2.3-r0 (V:)")
    c.add_argument("--arch", default="x86_64", help="APK architecture (default x86_64)")
    c.add_argument("--description", default="", help="one-line description (T:)")
    c.add_argument("--url", default="", help="project URL (U:)")
    c.add_argument("--license", default="", help="SPDX license expression (L:)")
    c.add_argument("--origin", default="", help="origin (source) package name (o:; default the name)")
    c.add_argument("--depends", action="list", metavar="DEP", help="a dependency atom (repeat or comma-separate)")
    c.add_argument("--provides", action="list", metavar="NAME", help="a provided name[=version] (repeatable)")
    c.add_argument("--replaces", action="list", metavar="NAME", help="a package whose files this one may overwrite")
    c.add_argument("--provider-priority", type=int, default=0, help="priority among providers of the same name (k:)")
    c.add_argument("--script", action="list", metavar=".post-install=FILE",
                   help="an install script to store (never run), as NAME=FILE")
    c.add_argument("--signing-key", type=Path, help="RSA private key to sign the package with")
    c.add_argument("-o", "--output", type=Path, required=True, help="the .apk file to write")
    c.set_defaults(func=cmd_create)

    i = psub.add_parser("index", help="write an APKINDEX.tar.gz for packages")
    i.add_argument("packages", nargs="+", type=Path, help="the .apk files to list")
    i.add_argument("-o", "--output", type=Path, default=Path("APKINDEX.tar.gz"), help="the index to write (default APKINDEX.tar.gz)")
    i.add_argument("-s", "--source", type=Path, help="an existing index whose entries are merged in")
    i.add_argument("-m", "--merge", action="bool", help="merge into the existing output index")
    i.add_argument("-a", "--arch", default="", help="skip packages of other architectures")
    i.add_argument("--description", default="", help="the index description (repository name and version)")
    i.add_argument("--signing-key", type=Path, help="RSA private key to sign the index with")
    i.set_defaults(func=cmd_index)

    s = psub.add_parser("sign", help="(re-)sign packages or indexes in place with RSA256 "
                                     "(melange sign: -k KEY FILE…; also KEY FILE…)")
    s.add_argument("files", nargs="+", type=Path, metavar="[KEY] FILE", help="packages or indexes (a leading key file is taken as -k)")
    s.add_argument("-k", "--signing-key", type=Path, default=None,
                   help=f"the RSA key (default: a first argument that is not a package, else {MELANGE_SIGN_KEY})")
    s.set_defaults(func=cmd_sign)

    si = psub.add_parser("sign-index", help="sign an APKINDEX.tar.gz in place (melange sign-index)")
    si.add_argument("index", type=Path, help="the APKINDEX.tar.gz to sign")
    si.add_argument("--signing-key", type=Path, default=Path(MELANGE_INDEX_KEY), help="the RSA key (default melange.rsa)")
    si.add_argument("-f", "--force", action="bool", help="replace existing signatures (otherwise a signed index is left alone)")
    si.set_defaults(func=cmd_sign_index)

    v = psub.add_parser("verify", help="verify packages or indexes; exit 0 only if every check passes")
    v.add_argument("files", nargs="+", type=Path, help="packages (.apk) or indexes (APKINDEX.tar.gz)")
    v.add_argument("--keyring", action="list", type=Path, metavar="DIR|FILE",
                   help="public keys (files or directories); repeat or comma-separate")
    v.set_defaults(func=cmd_verify)

    n = psub.add_parser("info", help="print a package's metadata and checksums")
    n.add_argument("file", type=Path, help="the .apk file")
    n.add_argument("--json", action="bool", help="print JSON")
    n.set_defaults(func=cmd_info)

    from distroless.cli import melange

    melange.register(psub)


def cmd_keygen(args: argparse.Namespace) -> int:
    path = Path(args.name)
    priv, pub = keys.write_keypair(path, keys.generate(args.key_size))
    print(f"wrote {priv} and {pub}")
    return 0


def _scripts(specs: list[str]) -> dict[str, bytes]:
    scripts: dict[str, bytes] = {}
    for spec in specs:
        name, sep, file = spec.partition("=")
        if not sep:
            raise FormatError(f"--script {spec!r}: expected NAME=FILE, e.g. .post-install=post.sh")
        scripts[name] = Path(file).read_bytes()
    return scripts


def cmd_create(args: argparse.Namespace) -> int:
    meta = Package(
        name=args.name, version=args.version, arch=args.arch, description=args.description, url=args.url,
        license=args.license, origin=args.origin or args.name, depends=args.depends, provides=args.provides,
        replaces=args.replaces, provider_priority=args.provider_priority,
    )
    from distroless import packagesteps as steps

    built = steps.pack_tree(args.dir, meta, args.output, signing_key=args.signing_key, scripts=_scripts(args.script),
                            source_date_epoch=source_date_epoch())
    print(f"{args.output}: {built.package.name}-{built.package.version} {built.checksum} sha256:{built.sha256}")
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    from distroless import packagesteps as steps

    n = steps.apk_index(args.packages, args.output, arch=args.arch, description=args.description,
                        signing_key=args.signing_key, source=args.source, merge=args.merge)
    key = keys.load_private(args.signing_key) if args.signing_key else None
    print(f"{args.output}: {n} packages{', signed by ' + key.pub_name if key else ''}")
    return 0


MELANGE_SIGN_KEY = "local-melange.rsa"  # melange sign's default -k
MELANGE_INDEX_KEY = "melange.rsa"  # melange sign-index's default --signing-key


def _signable(path: Path) -> bool:
    return path.suffix == ".apk" or path.name.startswith("APKINDEX")


def sign_arguments(files: list[Path], signing_key: Path | None) -> tuple[Path, list[Path]]:
    """(key, files): melange's `sign -k KEY FILE…`, or our older `sign KEY FILE…` when the first
    argument is not a package or an index."""
    if signing_key is not None:
        return signing_key, files
    if len(files) >= 2 and not _signable(files[0]):
        return files[0], files[1:]
    return Path(MELANGE_SIGN_KEY), files


def cmd_sign(args: argparse.Namespace) -> int:
    key_path, files = sign_arguments(args.files, args.signing_key)
    key = keys.load_private(key_path)
    for f in files:
        kind = resign.sign_file(f, key)
        print(f"{f}: {kind} signed by {key.pub_name}")
    return 0


def cmd_sign_index(args: argparse.Namespace) -> int:
    if not args.force:
        existing = index.read_file(args.index, verify=False)
        if existing.signatures:
            names = ", ".join(s.keyname for s in existing.signatures)
            print(f"{args.index}: already signed ({names}); nothing done (-f replaces the signatures)")
            return 0
    key = keys.load_private(args.signing_key)
    kind = resign.sign_file(args.index, key)
    print(f"{args.index}: {kind} signed by {key.pub_name}")
    return 0


def _is_index(path: Path) -> bool:
    return path.name.startswith("APKINDEX")


def cmd_verify(args: argparse.Namespace) -> int:
    ring = keys.Keyring.load(args.keyring) if args.keyring else None
    failed = 0
    for f in args.files:
        try:
            if _is_index(f):
                if ring is None:
                    raise DistrolessError(f"{f}: an index can only be verified against a keyring (--keyring)")
                ix = index.read_file(f, ring)
                print(f"{f}: OK: {len(ix.packages)} packages, signed by {', '.join(ix.verified_by)}")
            else:
                apk = package.verify_file(f, ring)
                signed = f"signed by {', '.join(apk.verified_by)}" if apk.verified_by else "signature not checked (no --keyring)"
                print(f"{f}: OK: {apk.package.name}-{apk.package.version} {apk.checksum} datahash ok, "
                      f"{sum(1 for e in apk.entries if e.sha1)} file checksums ok, {signed}")
        except DistrolessError as e:
            print(f"{f}: FAILED: {e}")
            failed += 1
    return 1 if failed else 0


def info_dict(apk: package.ApkFile) -> dict:
    pkg = asdict(apk.package)
    for k in ("repository", "pin"):
        pkg.pop(k)
    return {
        "package": pkg,
        "checksum": apk.checksum,
        "sha256": apk.sha256,
        "size": apk.file_size,
        "signatures": [{"algorithm": s.alg, "key": s.keyname} for s in apk.signatures],
        "sections": {
            name: asdict(sec) for name, sec in (("signature", apk.signature_section), ("control", apk.control_section),
                                                ("data", apk.data_section)) if sec
        },
        "scripts": [e.name for e, _ in apk.scripts],
        "files": len(apk.entries),
    }


def cmd_info(args: argparse.Namespace) -> int:
    apk = package.read(args.file)
    d = info_dict(apk)
    if args.json:
        print(json.dumps(d, indent=2))
        return 0
    p = d["package"]
    for k in ("name", "version", "arch", "description", "license", "origin", "url", "installed_size", "build_time", "datahash"):
        print(f"{k}: {p[k]}")
    for k in ("depends", "provides", "replaces", "install_if", "triggers"):
        if p[k]:
            print(f"{k}: {' '.join(p[k])}")
    print(f"checksum: {d['checksum']}\nsha256: {d['sha256']}\nsize: {d['size']}")
    for s in d["signatures"]:
        print(f"signature: {s['algorithm']} {s['key']}")
    for name, sec in d["sections"].items():
        print(f"{name} member: offset {sec['offset']} size {sec['size']} digest {sec['digest']}")
    if d["scripts"]:
        print(f"scripts: {' '.join(d['scripts'])}")
    print(f"entries: {d['files']}")
    return 0
