"""`package test RECIPE.yaml [PACKAGE]`: run a recipe's test pipelines (melange.md §3.7).

Each package with tests gets a fresh environment: its `test.environment` plus the package
itself (already added by the compiler), installed by the image engine from the recipe's
repositories, `--repository-append`, and the build's `--out-dir` when it holds an index for
the arch. As for builds, `--host-toolchain` (or a test environment naming no repository)
brings in the host's system directories, merged under the installed packages.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from distroless.melange.build import (BuildOptions, _cache_mount, _log, assemble_environment, build_archs,
                                      container_environment, load_for_build, populate_workspace)
from distroless.melange.duration import parse_duration
from distroless.melange.compile import ArchSkipped, CompileOptions, PackageOutput, compile_recipe
from distroless.melange.runner import SandboxSpec, host_shell, make_runner, run_steps
from distroless.rootfs.export import remove_tree


@dataclass(frozen=True, slots=True)
class TestOutcome:
    arch: str
    package: str
    steps: int


def _repositories(options: BuildOptions, arch: str) -> tuple[str, ...]:
    repos = tuple(options.repository_append)
    local = Path(options.out_dir)
    if (local / arch / "APKINDEX.tar.gz").is_file():
        repos += (str(local.resolve()),)
    return tuple(dict.fromkeys(repos))


def test_recipe(recipe_path: str | Path, options: BuildOptions = BuildOptions(),
                only: str = "") -> list[TestOutcome]:
    """Run the test pipelines of every package (or only `only`); the first failure raises
    StepFailed naming the test step."""
    recipe_path = Path(recipe_path)
    recipe = load_for_build(recipe_path, options)
    sde = options.source_date_epoch
    outcomes: list[TestOutcome] = []
    for arch in build_archs(options):
        try:
            compiled = compile_recipe(recipe, CompileOptions(
                arch=arch, build_options=options.build_options, pipeline_dirs=options.pipeline_dirs,
                include_tests=True, debug=options.debug))
        except ArchSkipped as exc:
            _log(options, f"skipping: {exc}")
            continue
        for pkg in compiled.packages:
            if only and pkg.name != only:
                continue
            if not pkg.test_steps or pkg.test_environment is None:
                _log(options, f"{pkg.name}: no tests")
                continue
            test_package(pkg, compiled.arch, options, sde, recipe_path)
            outcomes.append(TestOutcome(compiled.arch, pkg.name, len(pkg.test_steps)))
    return outcomes


def test_package(pkg: PackageOutput, arch: str, options: BuildOptions, sde: int, recipe_path: Path) -> None:
    env_config = pkg.test_environment
    assert env_config is not None
    if options.package_append:  # melange test's --test-package-append
        contents = env_config.contents
        env_config = replace(env_config, contents=replace(
            contents, packages=tuple(dict.fromkeys(contents.packages + tuple(options.package_append)))))
    host = options.host_toolchain or not env_config.contents.repositories
    timeout = parse_duration(options.timeout or "0", "--timeout")
    with tempfile.TemporaryDirectory(prefix="distroless-melange-test-") as tmp:
        scratch = Path(tmp)
        try:
            env = assemble_environment(
                env_config, arch, sde, scratch / "root", host_toolchain=host,
                keyring=options.keyring_append, repositories=_repositories(options, arch),
                cache_dir=options.apk_cache_dir, offline=options.offline,
                ignore_signatures=options.ignore_signatures, http_auth=options.http_auth)
            workspace = scratch / "workspace"
            workspace.mkdir()
            if options.source_dir is not None:
                populate_workspace(Path(options.source_dir), workspace, skip=(Path(options.out_dir), scratch))
            spec = SandboxSpec(root=env.root, workspace=workspace,
                               environment=container_environment(env_config, sde),
                               mounts=_cache_mount(options), host_toolchain=host,
                               network=bool(options.network), tree=env.tree,
                               shell=host_shell() if host else "/bin/sh",
                               deadline=time.monotonic() + timeout if timeout > 0 else None)
            runner = make_runner(options.runner, sink=options.log, docker=options.docker,
                                 docker_host=options.docker_host, remove=options.cleanup)
            _log(options, f"testing {pkg.name} for {arch} ({runner.name}{', host toolchain' if host else ''})")
            with runner.session(spec) as session:
                run_steps(session, pkg.test_steps, what="test", sink=options.log)
        finally:
            remove_tree(scratch / "root")


# pytest would otherwise try to collect these names when a test module imports them.
test_recipe.__test__ = False  # type: ignore[attr-defined]
test_package.__test__ = False  # type: ignore[attr-defined]
TestOutcome.__test__ = False  # type: ignore[attr-defined]
