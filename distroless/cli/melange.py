"""`package build` and `package test`: build melange recipes into .apk files, run their tests."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from distroless import hostenv
from distroless.config import parse_build_date
from distroless.errors import ConfigError
from distroless.fsutil import atomic_write
from distroless.events import Events, TextSink
from distroless.melange import lint
from distroless.melange.build import BuildOptions, build
from distroless.melange.test import test_recipe

RECIPE_NAMES = (".melange.yaml", ".melange.yml", "melange.yaml", "melange.yml")


def _csv(values: list[str]) -> tuple[str, ...]:
    return tuple(v.strip() for item in values for v in item.split(",") if v.strip())


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", nargs="?", type=Path, help="the recipe (default: melange.yaml and friends here)")
    p.add_argument("--arch", action="list", help="architectures (default: the host's)")
    p.add_argument("--out-dir", type=Path, default=Path("packages"), help="repository root (default ./packages)")
    p.add_argument("--source-dir", type=Path, help="workspace contents (build default: the recipe's directory)")
    p.add_argument("--pipeline-dir", action="list", type=Path, dest="pipeline_dir",
                   help="a directory of `uses:` pipelines searched before the built-in ones")
    p.add_argument("--pipeline-dirs", action="list", type=Path, dest="pipeline_dir",
                   help="directories of `uses:` pipelines (comma-separated or repeated)")
    p.add_argument("--runner", default="bubblewrap",
                   help="bubblewrap (default) or docker; melange's qemu runner is refused")
    p.add_argument("--docker", default="docker", help="docker CLI for --runner docker")
    p.add_argument("--docker-host", default=os.environ.get("DOCKER_HOST", ""), help="DOCKER_HOST for --runner docker")
    p.add_argument("--cache-dir", type=Path, help="bound at /var/cache/melange (default ./melange-cache if present)")
    p.add_argument("--apk-cache-dir", type=Path, help="package cache for the build environment")
    p.add_argument("-k", "--keyring-append", action="list", help="extra keys for the environment")
    p.add_argument("-r", "--repository-append", action="list", help="extra repositories")
    p.add_argument("--env-file", action="list", type=Path, help="dotenv files (the recipe wins)")
    p.add_argument("--vars-file", type=Path, help="YAML map merged over the recipe's vars")
    p.add_argument("--build-option", action="list", help="enable a recipe build option")
    p.add_argument("--host-toolchain", action="bool",
                   help="use the host's /usr, /lib… read-only (offline builds with the host's compiler)")
    p.add_argument("--network", action="bool", default=None,
                   help="sandbox network (default: only for recipes that fetch)")
    p.add_argument("--ignore-signatures", action="bool", help="accept unsigned repository indexes")
    p.add_argument("--offline", action="bool", help="never download; use the package cache")
    p.add_argument("--debug", action="bool", help="run steps with `set -x`")
    p.add_argument("--build-date", default="", help="RFC 3339 timestamp for the files; SOURCE_DATE_EPOCH wins")
    p.add_argument("--timeout", default="", help="Go duration bounding the build pipelines (e.g. 30m); "
                                                 "overrides package.timeout")
    p.add_argument("--cleanup", action="bool", default=True,
                   help="remove the temporary build directory afterwards")
    p.add_argument("--rm", action="bool", default=True,
                   help="remove intermediate artifacts (temporary directories, the docker image)")


def register(psub: argparse._SubParsersAction) -> None:
    b = psub.add_parser("build", help="build a melange recipe into .apk packages in a sandbox")
    _common(b)
    b.add_argument("--signing-key", type=Path, help="RSA key signing the packages and the index")
    b.add_argument("--generate-index", action="bool", default=True, help="update APKINDEX.tar.gz (default true)")
    b.add_argument("--namespace", default="unknown", help="the packages' maintainer field")
    b.add_argument("--git-commit", default="", help="commit recorded when the recipe sets none")
    b.add_argument("--workspace-dir", type=Path, help="keep the workspace under DIR/<arch>")
    b.add_argument("--empty-workspace", action="bool", help="do not copy the source dir")
    b.add_argument("--license", default="NOASSERTION",
                   help="license of the build file itself; it only feeds melange's in-package SBOM, which "
                        "distroless does not write (a note is printed when set)")
    b.add_argument("--package-append", action="list", help="extra packages for the build environment")
    b.add_argument("--create-build-log", action="bool",
                   help="append arch|origin|name|version-rN of each built package to ./packages.log")
    add_lint_flags(b)
    b.add_argument("--persist-lint-results", action="bool",
                   help="also write <out-dir>/<arch>/lint-<name>-<version>.json for each package")
    b.set_defaults(func=cmd_build)

    ln = psub.add_parser("lint", help="run melange's linters over .apk files")
    ln.add_argument("files", nargs="+", type=Path, metavar="APK", help="the packages to lint")
    add_lint_flags(ln)
    ln.add_argument("--persist-lint-results", action="bool",
                    help="also write <out-dir>/<arch>/lint-<name>-<version>.json (melange's shape)")
    ln.add_argument("--out-dir", type=Path, default=Path("packages"), help="where --persist-lint-results writes")
    ln.set_defaults(func=cmd_lint)

    lk = psub.add_parser("lock", help="resolve and pin a recipe's build environment (the lock a hermetic "
                                      "Bazel melange_package installs from)")
    _common(lk)
    lk.add_argument("-o", "--output", type=Path, help="the lock (default: RECIPE's name with .env.lock.json)")
    lk.add_argument("--package-append", action="list", help="extra packages for the build environment")
    lk.set_defaults(func=cmd_lock)

    t = psub.add_parser("test", help="run a melange recipe's test pipelines against built packages")
    _common(t)
    t.add_argument("package", nargs="?", default="", help="test only this (sub)package")
    t.add_argument("--test-package-append", action="list", dest="package_append",
                   help="extra packages for the test environments")
    t.set_defaults(func=cmd_test)


def add_lint_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lint-require", action="list", default=list(lint.default_require()),
                   help=f"linters that must pass (default {','.join(lint.default_require())})")
    p.add_argument("--lint-warn", action="list", default=list(lint.default_warn()),
                   help=f"linters that only warn (default {','.join(lint.default_warn())})")


def _recipe(path: Path | None) -> Path:
    if path is not None:
        return path
    for name in RECIPE_NAMES:
        if Path(name).is_file():
            return Path(name)
    raise ConfigError(f"no recipe given and none of {', '.join(RECIPE_NAMES)} here")


def options_from(args: argparse.Namespace) -> BuildOptions:
    return BuildOptions(
        out_dir=args.out_dir, archs=_csv(args.arch), signing_key=getattr(args, "signing_key", None),
        source_dir=args.source_dir, pipeline_dirs=tuple(args.pipeline_dir), runner=args.runner,
        cache_dir=args.cache_dir, apk_cache_dir=args.apk_cache_dir or hostenv.cache_root(),
        generate_index=getattr(args, "generate_index", True),
        keyring_append=_csv(args.keyring_append), repository_append=_csv(args.repository_append),
        env_files=tuple(args.env_file), vars_file=args.vars_file, build_options=_csv(args.build_option),
        host_toolchain=args.host_toolchain, network=args.network, namespace=getattr(args, "namespace", "unknown"),
        git_commit=getattr(args, "git_commit", ""), workspace_dir=getattr(args, "workspace_dir", None),
        empty_workspace=getattr(args, "empty_workspace", False), debug=args.debug, docker=args.docker,
        docker_host=args.docker_host, offline=args.offline, ignore_signatures=args.ignore_signatures,
        source_date_epoch=build_epoch(args), http_auth=tuple(hostenv.http_auth()),
        log=sys.stderr, events=Events(TextSink(sys.stderr)),
        package_append=_csv(args.package_append), cleanup=args.cleanup and args.rm,
        build_log=Path("packages.log") if getattr(args, "create_build_log", False) else None,
        persist_lint_results=getattr(args, "persist_lint_results", False),
        timeout=args.timeout, lint_require=_opt_csv(getattr(args, "lint_require", None)),
        lint_warn=_opt_csv(getattr(args, "lint_warn", None)))


def build_epoch(args: argparse.Namespace) -> int:
    """melange's rule: $SOURCE_DATE_EPOCH when set, else --build-date (RFC 3339), else 0."""
    sde = hostenv.source_date_epoch()
    if sde is not None:
        return sde
    return parse_build_date(args.build_date) if args.build_date else 0


def _opt_csv(values: list[str] | None) -> tuple[str, ...] | None:
    return None if values is None else _csv(values)


def cmd_build(args: argparse.Namespace) -> int:
    if args.license != "NOASSERTION":
        print(f"distroless: note: --license {args.license!r} is not recorded: it only feeds melange's "
              "in-package SBOM, which distroless does not write", file=sys.stderr)
    results = build(_recipe(args.recipe), options_from(args))
    for r in results:
        for p in r.packages:
            print(f"{p.path}: {p.package.name}-{p.package.version} {p.package.checksum} sha256:{p.sha256}")
        if r.index is not None:
            print(f"{r.index}: updated")
    return 0


def env_lock_path(recipe: Path) -> Path:
    stem = recipe.name.rsplit(".", 1)[0] if recipe.suffix in (".yaml", ".yml") else recipe.name
    return recipe.with_name(stem + ".env.lock.json")


def cmd_lock(args: argparse.Namespace) -> int:
    from distroless import lock as lockfile
    from distroless.melange.build import lock_recipe

    recipe = _recipe(args.recipe)
    lk = lock_recipe(recipe, options_from(args))
    out = args.output or env_lock_path(recipe)
    lockfile.write(lk, out)
    counts = ", ".join(f"{a}: {len(lk.packages_for(a))}" for a in lk.archs())
    print(f"{out}: {len(lk.packages)} environment packages locked ({counts})")
    return 0


def cmd_lint(args: argparse.Namespace) -> int:
    require = lint.check_names(_csv(args.lint_require), "--lint-require")
    warn = tuple(n for n in lint.check_names(_csv(args.lint_warn), "--lint-warn") if n not in require)
    failed = 0
    skipped: set[str] = set()
    for f in args.files:
        target = lint.target_of_apk(f)
        result = lint.lint(target, require, warn)
        skipped.update(result.skipped)
        if args.persist_lint_results:
            out = args.out_dir / target.arch / lint.results_filename(target.name, target.version)
            out.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(out, (json.dumps(lint.results_document(target.name, result), indent=2) + "\n").encode())
        for line in lint.render(str(f), result):
            print(line)
        if result.errors:
            failed += 1
        elif not result.warnings:
            print(f"{f}: OK")
    if skipped:
        print(f"distroless: note: not implemented here, skipped: {', '.join(sorted(skipped))}", file=sys.stderr)
    return 1 if failed else 0


def cmd_test(args: argparse.Namespace) -> int:
    outcomes = test_recipe(_recipe(args.recipe), options_from(args), only=args.package)
    for o in outcomes:
        print(f"{o.package} ({o.arch}): {o.steps} test step(s) passed")
    if not outcomes:
        print("no tests ran")
    return 0
