"""`image lock|show-packages|build|build-minirootfs`: apko's verbs and flags over the engine's steps."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from collections.abc import Sequence
from typing import TYPE_CHECKING

from distroless import hostenv
from distroless.cli import events_of
from distroless.errors import ConfigError
from distroless.limits import Limits

# The engine is imported inside the commands: registering them must not load it, and each verb
# loads only what it uses (a warm `show-packages` answers from the resolve step's cache).
if TYPE_CHECKING:
    from distroless import packages as pkgset
    from distroless.config import LoadedConfig
    from distroless.fetch.fetcher import Fetcher

# apko's predefined formats (internal/cli/show-packages.go); anything else is a Go template.
SHOW_FORMATS = {
    "name-version": "{{ .Name }} {{ .Version }}",
    "name-version-source": "{{ .Name }} {{ .Version }} {{ .Source }}",
    "name=version": "{{ .Name }}={{ .Version }}",
    "name=version-source": "{{ .Name }}={{ .Version }} {{ .Source }}",
    "name-(version)": "{{ .Name }} ({{ .Version }})",
    "name-(version)-source": "{{ .Name }} ({{ .Version }}) {{ .Source }}",
    "packagelock": "- {{ .Name }}={{ .Version }}",
    "packagelock-source": "- {{ .Name }}={{ .Version }} # {{ .Source }}",
}
LIMIT_FLAGS = (
    ("--max-apkindex-decompressed-size", "index_decompressed", "decompressed APKINDEX archives"),
    ("--max-apk-control-size", "apk_control", "decompressed APK control sections"),
    ("--max-apk-data-size", "apk_data", "decompressed APK data sections"),
    ("--max-http-response-size", "http_response", "HTTP responses"),
)


def add_limit_flags(p: argparse.ArgumentParser) -> None:
    """apko's `--max-*` size caps (bytes; 0 = default, -1 = no limit), wired to the engine's."""
    defaults = Limits()
    for flag, field, what in LIMIT_FLAGS:
        p.add_argument(flag, dest=f"max_{field}", type=int, default=0, metavar="BYTES",
                       help=f"cap on {what} (default {getattr(defaults, field)}; 0 = default, -1 = no limit)")


def limits_of(args: argparse.Namespace) -> Limits:
    return Limits.from_flags({field: (flag, getattr(args, f"max_{field}", 0)) for flag, field, _w in LIMIT_FLAGS})


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
    add_limit_flags(p)
    if build:
        p.add_argument("--annotations", action="list", metavar="KEY:VALUE", help="manifest/index annotations")
        p.add_argument("--build-date", default="", help="RFC 3339; SOURCE_DATE_EPOCH wins when set")
        p.add_argument("--lockfile", type=Path, help="install exactly this lock")
        p.add_argument("--format", default="", help="layer format: tar (default); erofs is not supported")


def load(args: argparse.Namespace) -> LoadedConfig:
    from distroless.config import Overrides, load_image_config

    ov = Overrides(
        source_date_epoch=hostenv.source_date_epoch(),
        archs=tuple(args.arch), keyring_append=tuple(args.keyring_append),
        build_repository_append=tuple(args.build_repository_append),
        repository_append=tuple(args.repository_append), package_append=tuple(args.package_append),
        include_paths=tuple(args.include_paths),
        annotations=tuple(getattr(args, "annotations", ())), build_date=getattr(args, "build_date", ""),
        format=getattr(args, "format", ""),
    )
    from distroless.store.parsedconfig import cached_parser

    loaded = load_image_config(args.config, ov, parse=cached_parser(cache_dir(args)))
    if loaded.config.layer_format != "tar":
        raise ConfigError(f"{args.config}: format {loaded.config.layer_format!r}: only tar layers are built "
                          f"(apko's experimental erofs is not supported)")
    return loaded


def cache_dir(args: argparse.Namespace) -> Path:
    return args.cache_dir or hostenv.cache_root()


def fetcher_for(args: argparse.Namespace) -> Fetcher:
    from distroless.fetch.fetcher import Fetcher
    from distroless.fetch.transport import Transport
    from distroless.store.cache import Cache

    transport = Transport(auth=hostenv.http_auth(), deadline=hostenv.download_deadline())
    return Fetcher(Cache(cache_dir(args)), transport,
                   offline=args.offline, jobs=args.jobs, events=events_of(args), limits=limits_of(args))


def package_set(args: argparse.Namespace, loaded: LoadedConfig, fetcher: Fetcher) -> pkgset.PackageSet:
    from distroless import lock as lockfile
    from distroless import packages as pkgset

    lock_path = getattr(args, "lockfile", None)
    if lock_path:
        return pkgset.from_lock(lockfile.load(lock_path), loaded, lock_path=str(lock_path), events=events_of(args))
    return pkgset.resolve_config(loaded, fetcher, ignore_signatures=args.ignore_signatures)


# Every `image` verb, the module registering it and its help, in help order: a command line
# naming one verb registers only that verb's module for real (the others are placeholders that
# show in help), as the top-level commands do. tests/test_cli_entry.py holds this table to the
# modules' registrations.
VERBS: dict[str, tuple[str, str]] = {
    "lock": ("image", "resolve and pin every package (apko.lock.json v1 + sha256); alias: resolve"),
    "show-packages": ("image", "print the resolved packages in install order"),
    "build": ("build", "build an OCI image (layout directory or docker-archive tar)"),
    "build-minirootfs": ("build", "write the root filesystem as an uncompressed tar"),
    "publish": ("publish", "build and push an image index; sign it and attest its SBOM"),
    "show-config": ("inspect", "print the configuration after includes, flags and defaults (YAML)"),
    "dot": ("inspect", "print the resolved package graph as Graphviz DOT"),
}
ALIASES = {"lock": ["resolve"]}


def register(sub: argparse._SubParsersAction, words: Sequence[str] | None = None) -> None:
    import importlib

    image = sub.add_parser("image", help="build distroless images from apko YAML")
    isub = image.add_subparsers(dest="image_command", required=True, metavar="VERB")
    named = {verb for verb, aliases in ALIASES.items() for a in aliases if words and a in words}
    named |= {w for w in words or () if w in VERBS}
    wanted = None if words is None else {VERBS[v][0] for v in named}
    registered: set[str] = set()
    for verb, (module, text) in VERBS.items():
        if wanted is None or module in wanted:
            if module not in registered:
                own = module == "image"
                (register_verbs if own else importlib.import_module(f"distroless.cli.{module}").register)(isub)
                registered.add(module)
        else:
            isub.add_parser(verb, aliases=ALIASES.get(verb, []), help=text)


def register_verbs(isub: argparse._SubParsersAction) -> None:
    """`image lock` and `image show-packages` (this module's verbs)."""
    lk = isub.add_parser("lock", aliases=ALIASES["lock"], help=VERBS["lock"][1])
    lk.add_argument("config", type=Path, help="the apko image configuration (YAML)")
    lk.add_argument("--output", type=Path, help="default: <config without extension>.lock.json")
    lk.add_argument("--json", action="bool", help="print the result (lock file, package counts) as JSON")
    add_config_flags(lk, build=False)
    lk.set_defaults(func=cmd_lock)

    sp = isub.add_parser("show-packages", help=VERBS["show-packages"][1])
    sp.add_argument("config", type=Path, help="the apko image configuration (YAML)")
    sp.add_argument("--format", dest="show_format", default="name-version",
                    help=f"one of {', '.join(SHOW_FORMATS)}, json, or a Go template over .Name .Version .Source "
                         "(fields, if/else/with, eq/ne/not/and/or/printf)")
    add_config_flags(sp, build=False)
    sp.set_defaults(func=cmd_show_packages)


def cmd_lock(args: argparse.Namespace) -> int:
    from distroless import lock as lockfile
    from distroless import steps

    loaded = load(args)
    fetcher = fetcher_for(args)
    output = args.output or args.config.with_name(args.config.stem + ".lock.json")
    ps, lk = steps.resolve(loaded, fetcher, str(args.config), ignore_signatures=args.ignore_signatures)
    lockfile.write(lk, output)
    if getattr(args, "json", False):
        print_json({"lockfile": str(output), "files": [str(output)], "packages": len(lk.packages),
                    "archs": {a: len(p) for a, p in ps.archs.items()}})
        return 0
    counts = ", ".join(f"{a}: {len(p)}" for a, p in ps.archs.items())
    print(f"{output}: {len(lk.packages)} packages locked ({counts})")
    return 0


def print_json(obj: object) -> None:
    """`--json`: one JSON document on stdout, the command's whole result (for scripts and jq)."""
    print(json.dumps(obj, indent=2))


def cmd_show_packages(args: argparse.Namespace) -> int:
    from distroless import packages as pkgset
    from distroless.cli import gotemplate
    from distroless.config import arch_to_apk

    template = SHOW_FORMATS.get(args.show_format, args.show_format)
    if args.show_format != "json":
        gotemplate.parse(template)  # a bad template fails before any network work
    loaded = load(args)
    ps = pkgset.resolve_config(loaded, fetcher_for(args), ignore_signatures=args.ignore_signatures)
    if args.show_format == "json":
        print(json.dumps([{"arch": arch_to_apk(arch), "name": p.package.name, "version": p.package.version, "source": p.url}
                          for arch, pins in ps.archs.items() for p in pins], indent=2))
        return 0
    for arch, pins in ps.archs.items():
        if len(ps.archs) > 1:
            sys.stdout.flush()
            print(f"packages for {arch}", file=sys.stderr)  # apko logs this line; stdout stays data
        sys.stdout.write("".join(gotemplate.render(template, {"Name": p.package.name, "Version": p.package.version,
                                                               "Source": p.url}) + "\n" for p in pins))
    return 0


