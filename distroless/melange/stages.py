"""A recipe build cut into stages that run apart, each over plain files: what the BuildKit
frontend runs as separate ExecOps (`python3 -m distroless.steps melange-workspace|melange-pack|
melange-index`), while `package build` runs the same functions in one process.

  workspace  the source tree → the workspace (`populate_workspace`, the output directories),
             owned by the build user as the sandbox's steps write it;
  (steps)    the compiled pipeline's scripts, one sandbox run each (the front door runs them);
  pack       the workspace's `melange-out/<package>` trees → SCA, signed `.apk`s, the linters;
  index      the packages of one architecture → the signed `APKINDEX.tar.gz`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from distroless.apk import keys as apkkeys
from distroless.apk.package import read as read_apk
from distroless.config import LoadedConfig
from distroless.events import NULL, Events
from distroless.melange import schema as s
from distroless.melange.build import (OUT_REL, BuildOptions, BuiltPackage, emit, populate_workspace, run_linters,
                                      loaded_from, skeleton_tree, write_index, _owners)
from distroless.melange.compile import CompiledRecipe, CompileOptions, compile_recipe
from distroless.melange.recipe import BUILD_UID, load_recipe_text, with_env_file
from distroless.rootfs.layer import id_names


@dataclass(frozen=True, slots=True)
class RecipeInput:
    """What every stage compiles from: the recipe's bytes and the front door's variables."""

    text: bytes
    filename: str
    env_file: Mapping[str, str]  # `--env-file`-style variables (the frontend's build args)

    def recipe(self) -> s.Recipe:
        recipe = load_recipe_text(self.text, self.filename)
        return with_env_file(recipe, self.env_file) if self.env_file else recipe

    def compile(self, arch: str) -> CompiledRecipe:
        return compile_recipe(self.recipe(), CompileOptions(arch=arch, include_tests=False))

    def environment(self, arch: str, sde: int) -> LoadedConfig:
        """The build environment (`environment.contents`) as the engine's config for `arch`, as
        `package build` installs it. Its checksum is the recipe's bytes and variables, so a lock
        made from it (the frontend's resolution, handed to the metadata step) names this recipe."""
        compiled = self.compile(arch)
        digest = hashlib.sha256(self.text + json.dumps(dict(self.env_file), sort_keys=True).encode()).hexdigest()
        return replace(loaded_from(compiled.environment, compiled.arch, sde), checksum=f"sha256:{digest}")


def prepare_workspace(source: Path, workspace: Path, packages: Sequence[str], *, uid: int = BUILD_UID,
                      gid: int = BUILD_UID) -> int:
    """The sources (as `package build` copies them) plus `melange-out/<name>` per package, owned
    by the build user when we may chown (the sandbox writes as that user). Returns the file count."""
    count = populate_workspace(source, workspace)
    for name in packages:
        (workspace / OUT_REL / name).mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        for dirpath, dirnames, filenames in os.walk(workspace):
            for name in dirnames + filenames:
                os.chown(os.path.join(dirpath, name), uid, gid, follow_symlinks=False)
        os.chown(workspace, uid, gid)
    return count


def environment_users(compiled: CompiledRecipe, env_root: Path | None) -> dict[int, str]:
    """uid → name as the build environment's /etc/passwd has it (the owners recorded in the
    packages); without an installed environment, the host-toolchain skeleton's."""
    if env_root is not None and (env_root / "etc" / "passwd").is_file():
        return id_names((env_root / "etc" / "passwd").read_text("utf-8", "replace"))
    users, _groups = _owners(skeleton_tree(compiled.environment))
    return users


def load_key(path: Path | None, name: str = "") -> apkkeys.SigningKey | None:
    """The signing key; `name` (e.g. melange.rsa) overrides the file's own name, which decides the
    signature's `.SIGN.RSA256.<name>.pub` (a secret mount's file is named after the secret)."""
    if path is None:
        return None
    key = apkkeys.load_private(path)
    return replace(key, pub_name=f"{name}.pub") if name else key


def pack_workspace(recipe: RecipeInput, arch: str, workspace: Path, out_dir: Path, *, sde: int,
                   signing_key: Path | None = None, key_name: str = "", namespace: str = "unknown",
                   env_root: Path | None = None, events: Events = NULL) -> list[BuiltPackage]:
    """Every package of the recipe for `arch` from a workspace the pipeline ran in, written to
    `out_dir/<arch>/`, exactly as `package build` emits them; then melange's linters."""
    compiled = recipe.compile(arch)
    key = load_key(signing_key, key_name)
    options = BuildOptions(out_dir=out_dir, namespace=namespace, events=events)
    dest = out_dir / compiled.arch
    dest.mkdir(parents=True, exist_ok=True)
    users = environment_users(compiled, env_root)
    trees = [workspace / OUT_REL / p.name for p in compiled.packages]
    text = compiled.melange_yaml().encode()
    built = [emit(pkg, tree, [t for t in trees if t != tree], dest, options, sde, key, users, text)
             for pkg, tree in zip(compiled.packages, trees)]
    run_linters(options, compiled, built)
    return built


def index_directory(directory: Path, arch: str, *, signing_key: Path | None = None, key_name: str = "") -> Path:
    """`<directory>/APKINDEX.tar.gz` over the `.apk` files there (as `package build` writes it)."""
    key = load_key(signing_key, key_name)
    packages = [read_apk(p).package for p in sorted(directory.glob("*.apk"))]
    return write_index(directory, packages, key, arch)
