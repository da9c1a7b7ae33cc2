"""`image lock|show-packages|build|build-minirootfs`: apko's verbs and flags over the engine's steps."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from distroless import hostenv
from distroless.cli import events_of
from distroless import lock as lockfile
from distroless import packages as pkgset
from distroless.config import LoadedConfig, Overrides, load_image_config
from distroless.errors import ConfigError
from distroless.store.cache import Cache
from distroless.fetch.fetcher import Fetcher
from distroless.fetch.transport import Transport

SHOW_FORMATS = {
    "name-version": "{name}-{version}",
    "name-version-source": "{name}-{version} {source}",
    "name=version": "{name}={version}",
    "name=version-source": "{name}={version} {source}",
    "name-(version)": "{name}-({version})",
    "name-(version)-source": "{name}-({version}) {source}",
    "packagelock": "- {name}={version}",
    "packagelock-source": "- {name}={version} # {source}",
}


def add_config_flags(p: argparse.ArgumentParser, *, build: bool = True) -> None:
    p.add_argument("--arch", action="list", help="architectures (all, host, or a list)")
    p.add_argument("-k", "--keyring-append", action="list", metavar="KEY", help="extra keyring files or URLs")
    p.add_argument("-b", "--build-repository-append", action="list", metavar="REPO",
                   help="extra repositories used only to build")
    p.add_argument("-r", "--repository-append", action="list", metavar="REPO",
                   help="extra repositories (build and /etc/apk/repositories)")
    p.add_argument("-p", "--package-append", action="list", metavar="PKG", help="extra packages")
    p.add_argument("--include-paths", action="list", metavar="DIR", help="where `include:` files are looked up")
    p.add_argument("--cache-dir", type=Path, default=None, help="package and index cache")
    p.add_argument("--offline", action="bool", help="use only the cache; fail on a miss")
    p.add_argument("--ignore-signatures", action="bool", help="accept unsigned or unknown-key indexes")
    p.add_argument("-j", "--jobs", type=int, default=4, help="parallel downloads")
    if build:
        p.add_argument("--annotations", action="list", metavar="KEY:VALUE", help="manifest/index annotations")
        p.add_argument("--build-date", default="", help="RFC 3339; SOURCE_DATE_EPOCH wins when set")
        p.add_argument("--lockfile", type=Path, help="install exactly this lock")
        p.add_argument("--format", default="", help="layer format: tar (default); erofs is not supported")


def load(args: argparse.Namespace) -> LoadedConfig:
    ov = Overrides(
        source_date_epoch=hostenv.source_date_epoch(),
        archs=tuple(args.arch), keyring_append=tuple(args.keyring_append),
        build_repository_append=tuple(args.build_repository_append),
        repository_append=tuple(args.repository_append), package_append=tuple(args.package_append),
        include_paths=tuple(args.include_paths),
        annotations=tuple(getattr(args, "annotations", ())), build_date=getattr(args, "build_date", ""),
        format=getattr(args, "format", ""),
    )
    loaded = load_image_config(args.config, ov)
    if loaded.config.layer_format != "tar":
        raise ConfigError(f"{args.config}: format {loaded.config.layer_format!r}: only tar layers are built "
                          f"(apko's experimental erofs is not supported)")
    return loaded


def fetcher_for(args: argparse.Namespace) -> Fetcher:
    return Fetcher(Cache(args.cache_dir or hostenv.cache_root()), Transport(auth=hostenv.http_auth()),
                   offline=args.offline, jobs=args.jobs, events=events_of(args))


def package_set(args: argparse.Namespace, loaded: LoadedConfig, fetcher: Fetcher) -> pkgset.PackageSet:
    lock_path = getattr(args, "lockfile", None)
    if lock_path:
        return pkgset.from_lock(lockfile.load(lock_path), loaded, lock_path=str(lock_path), events=events_of(args))
    return pkgset.resolve_config(loaded, fetcher, ignore_signatures=args.ignore_signatures)


def register(sub: argparse._SubParsersAction) -> None:
    image = sub.add_parser("image", help="build distroless images from apko YAML")
    isub = image.add_subparsers(dest="image_command", required=True, metavar="VERB")

    lk = isub.add_parser("lock", help="resolve and pin every package (apko.lock.json v1 + sha256)")
    lk.add_argument("config", type=Path)
    lk.add_argument("--output", type=Path, help="default: <config without extension>.lock.json")
    add_config_flags(lk, build=False)
    lk.set_defaults(func=cmd_lock)

    sp = isub.add_parser("show-packages", help="print the resolved packages in install order")
    sp.add_argument("config", type=Path)
    sp.add_argument("--format", dest="show_format", default="name-version",
                    help=f"one of {', '.join(SHOW_FORMATS)}, or a template over {{name}} {{version}} {{source}}")
    add_config_flags(sp, build=False)
    sp.set_defaults(func=cmd_show_packages)

    from distroless.cli import build as build_cmds

    build_cmds.register(isub)


def cmd_lock(args: argparse.Namespace) -> int:
    loaded = load(args)
    fetcher = fetcher_for(args)
    ps = pkgset.resolve_config(loaded, fetcher, ignore_signatures=args.ignore_signatures)
    fetched = pkgset.fetch_all(ps, fetcher)
    output = args.output or args.config.with_name(args.config.stem + ".lock.json")
    lk = pkgset.lock_of(loaded, ps, fetched, str(args.config), fetcher.cache)
    lockfile.write(lk, output)
    counts = ", ".join(f"{a}: {len(p)}" for a, p in ps.archs.items())
    print(f"{output}: {len(lk.packages)} packages locked ({counts})")
    return 0


def go_template(text: str) -> str:
    """apko takes any Go template over .Name .Version .Source; the common `{{.Field}}` form is
    mapped onto str.format fields (braces elsewhere are kept literally)."""
    out = text.replace("{", "{{").replace("}", "}}")
    for go, py in (("Name", "name"), ("Version", "version"), ("Source", "source")):
        out = re.sub(r"\{\{\{\{\s*\." + go + r"\s*\}\}\}\}", "{" + py + "}", out)
    return out


def cmd_show_packages(args: argparse.Namespace) -> int:
    loaded = load(args)
    ps = pkgset.resolve_config(loaded, fetcher_for(args), ignore_signatures=args.ignore_signatures)
    template = SHOW_FORMATS.get(args.show_format) or go_template(args.show_format)
    for arch, pins in ps.archs.items():
        if len(ps.archs) > 1:
            print(f"# {arch}")
        for p in pins:
            try:
                print(template.format(name=p.package.name, version=p.package.version, source=p.url))
            except (KeyError, IndexError, ValueError):
                print(f"distroless: error: --format {args.show_format!r}: unknown format or bad template", file=sys.stderr)
                return 1
    return 0


