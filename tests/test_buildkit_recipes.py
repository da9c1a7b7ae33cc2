"""The packages mode's graph without a daemon: what is pinned, refused, mounted and where the
secret goes (tests/test_buildkit_packages.py runs it on dockerd 26)."""

from __future__ import annotations

from pathlib import Path

import pytest

from distroless.buildkit import frontend, llb, llbdef, recipes
from distroless.buildkit._pb import ops as pb
from distroless.errors import DistrolessError
from distroless.melange.stages import RecipeInput

ROOT = Path(__file__).resolve().parents[1]
SHA = "ab" * 32
RECIPE = """\
package:
  name: r
  version: 1.0.0
  epoch: 0
  description: d
  copyright:
    - license: MIT
environment:
  contents:
    packages: []
pipeline:
  - uses: fetch
    with:
      uri: http://127.0.0.1:1/r-1.0.0.tar.gz
      {pin}
  - name: build
    runs: echo hi
"""


def compiled(pin: str = f"expected-sha256: {SHA}"):
    return RecipeInput(RECIPE.format(pin=pin).encode(), "r.yaml", {}).compile("x86_64")


def graph(req: recipes.Request, c, environment: recipes.BuildEnvironment | None = None) -> pb.Definition:
    tool = llb.image("127.0.0.1:5000/fe:t", platform=llb.Platform("linux", "amd64", ""))
    environment = environment or recipes.BuildEnvironment(recipes.host_environment(tool, c), recipes.HOST_SHELL,
                                                          packages=False)
    sources = recipes.pinned_sources(c, "r.yaml", req.allow_network, False)
    ws = recipes.workspace_state(tool, recipes.context_source("context", "sess"), c, False)
    ws = recipes.run_steps(environment, ws, c, sources, sde=req.sde, network=False, no_cache=False)
    key_id = recipes.key_id_state(tool) if req.key_name else None
    packed = recipes.pack_state(tool, tool, ws, c, req, key_id, environment)
    return recipes.index_state(tool, packed, "x86_64", req, key_id).marshal()


def execs(d: pb.Definition) -> dict[str, pb.ExecOp]:
    return {d.metadata[dg].description["llb.customname"]: op.exec for dg, op in llbdef.ops(d)
            if op.WhichOneof("op") == "exec"}


def test_detects_recipes_only() -> None:
    assert frontend.is_recipe((ROOT / "examples/recipes/demo-hello.yaml").read_bytes())
    assert not frontend.is_recipe((ROOT / "examples/image.yaml").read_bytes())
    assert not frontend.is_recipe(b"package: [unclosed")


def test_request_options() -> None:
    req = recipes.parse_request({"platform": "linux/arm64,linux/amd64", "build-arg:SOURCE_DATE_EPOCH": "5",
                                 "build-arg:BUILDKIT_SYNTAX": "x", "build-arg:GREETING": "hi",
                                 "build-arg:DISTROLESS_NAMESPACE": "acme"})
    assert req.archs == ("aarch64", "x86_64") and req.sde == 5 and req.namespace == "acme"
    assert dict(req.env_file) == {"GREETING": "hi"} and req.key_name == "melange.rsa"
    assert recipes.parse_request({"build-arg:DISTROLESS_UNSIGNED": "true"}).key_name == ""
    with pytest.raises(DistrolessError, match="DISTROLESS_ALLOW_NETWORK"):
        recipes.parse_request({"build-arg:DISTROLESS_ALLOW_NETWORK": "maybe"})


def test_sha256_fetch_is_a_pinned_http_source_mounted_where_fetch_looks() -> None:
    d = graph(recipes.parse_request({}), compiled())
    https = [op.source for _, op in llbdef.ops(d) if op.WhichOneof("op") == "source"
             and op.source.identifier.startswith("http://")]
    assert [h.attrs["http.checksum"] for h in https] == [f"sha256:{SHA}"]
    fetch = execs(d)["[x86_64] r: fetch > ???"]
    mounts = {m.dest: m for m in fetch.mounts}
    assert mounts[f"/var/cache/melange/sha256:{SHA}"].readonly
    assert mounts[f"/var/cache/melange/sha256:{SHA}"].selector == f"/sha256:{SHA}"
    assert "/var/cache/melange/sha256:" not in str(execs(d)["[x86_64] r: build"].mounts)


def test_unpinned_and_git_sources_are_refused_unless_network_is_allowed() -> None:
    with pytest.raises(DistrolessError, match=r"r.yaml: fetch http://127.0.0.1:1/r-1.0.0.tar.gz: no expected-sha256"):
        recipes.pinned_sources(compiled("expected-none: 'true'"), "r.yaml", False, False)
    assert recipes.pinned_sources(compiled("expected-none: 'true'"), "r.yaml", True, False) == []
    (src,) = recipes.pinned_sources(compiled("expected-sha512: " + "cd" * 64), "r.yaml", False, False)
    assert src.cache_name == "sha512:" + "cd" * 64


def test_steps_run_as_the_build_user_without_network_and_never_see_the_secret() -> None:
    d = graph(recipes.parse_request({"build-arg:SOURCE_DATE_EPOCH": "7"}), compiled())
    ex = execs(d)
    for name in ("[x86_64] r: fetch > ???", "[x86_64] r: build"):
        assert ex[name].meta.user == "1000:1000" and ex[name].meta.cwd == "/home/build"
        assert ex[name].network == pb.NONE
        assert "SOURCE_DATE_EPOCH=7" in ex[name].meta.env
        assert list(ex[name].meta.env) == sorted(ex[name].meta.env)  # bubblewrap's order
    secret_users = sorted(n for n, e in ex.items() if any(m.mountType == pb.SECRET for m in e.mounts))
    assert secret_users == sorted(["[x86_64] index", "[x86_64] pack r", recipes.KEY_ID_STEP])
    for n in secret_users:
        (m,) = [m for m in ex[n].mounts if m.mountType == pb.SECRET]
        assert m.secretOpt.ID == "signing-key" and not m.secretOpt.optional and m.output == -1
    # the key's id is a read-only (content-keyed) mount of the signing stages
    assert any(m.dest == "/key" and m.readonly for m in ex["[x86_64] pack r"].mounts)


def test_unsigned_builds_mount_no_secret() -> None:
    d = graph(recipes.parse_request({"build-arg:DISTROLESS_UNSIGNED": "1"}), compiled())
    assert not any(m.mountType == pb.SECRET for e in execs(d).values() for m in e.mounts)


def test_from_definition_round_trips_a_graph() -> None:
    """A bake `target:` context: the same ops (bytes, so digests) and the same cache bypass. The
    key's digest step ignores the cache; embedded without it, BuildKit 0.13 loads it twice (the
    other target evaluates its own graph meanwhile) and its provenance walk crashes the daemon."""
    d = graph(recipes.parse_request({}), compiled())
    again = llbdef.from_definition(d).marshal()
    assert getattr(again, "def") == getattr(d, "def")
    ignored = {k for k, md in d.metadata.items() if md.ignore_cache}
    assert ignored and ignored == {k for k, md in again.metadata.items() if md.ignore_cache}
    assert {k: md.description for k, md in again.metadata.items()} == \
        {k: md.description for k, md in d.metadata.items()}


def test_an_environment_from_packages_runs_sh_and_names_owners_from_its_accounts() -> None:
    """With `environment.contents.repositories` the steps run the environment's /bin/sh (the CLI's
    shell there) and the pack step reads the environment's /etc (its passwd names the owners)."""
    env_root = llb.image("127.0.0.1:5000/env:t", name="an environment")
    d = graph(recipes.parse_request({}), compiled(), recipes.BuildEnvironment(env_root, recipes.ENV_SHELL, packages=True))
    ex = execs(d)
    assert list(ex["[x86_64] r: build"].meta.args[:2]) == ["/bin/sh", "-c"]
    pack = ex["[x86_64] pack r"]
    (etc,) = [m for m in pack.mounts if m.dest == "/env/etc"]
    assert etc.readonly and etc.selector == "/etc"
    args = list(pack.meta.args)
    assert args[args.index("--env-root") + 1] == "/env"
    host = execs(graph(recipes.parse_request({}), compiled()))
    assert host["[x86_64] r: build"].meta.args[0] == "/bin/bash" and "--env-root" not in host["[x86_64] pack r"].meta.args


GIT = """\
package:
  name: g
  version: 1.0.0
  epoch: 0
  description: d
  copyright:
    - license: MIT
environment:
  contents:
    packages: []
pipeline:
  - uses: git-checkout
    with:
      repository: {repo}
      branch: main
      {extra}
  - name: build
    runs: ls
"""
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def git_compiled(extra: str = f"expected-commit: {COMMIT}", repo: str = "git://127.0.0.1:9418/r.git"):
    return RecipeInput(GIT.format(repo=repo, extra=extra).encode(), "g.yaml", {}).compile("x86_64")


def test_git_checkout_with_expected_commit_is_a_git_source_at_that_commit() -> None:
    c = git_compiled()
    (src,) = recipes.pinned_sources(c, "g.yaml", False, False)
    assert src.cache_name == f"git/{COMMIT}" and src.selector == "" and src.git.ref == "refs/heads/main"
    op = src.state.output.vertex.body.source
    assert op.identifier == f"git://127.0.0.1:9418/r.git#{COMMIT}"
    assert dict(op.attrs) == {"git.fullurl": "git://127.0.0.1:9418/r.git", "git.keepgitdir": "true"}
    d = graph(recipes.parse_request({}), c)
    checkout = execs(d)["[x86_64] g: git-checkout > ???"]
    (m,) = [m for m in checkout.mounts if m.dest == f"/var/cache/melange/git/{COMMIT}"]
    assert m.readonly and m.selector == "" and checkout.network == pb.NONE
    assert not any("/var/cache/melange" in m.dest for m in execs(d)["[x86_64] g: build"].mounts)


def test_git_checkout_refusals_name_the_recipe_and_repository() -> None:
    with pytest.raises(DistrolessError, match=r"g.yaml: git-checkout git://127.0.0.1:9418/r.git: no expected-commit"):
        recipes.pinned_sources(git_compiled(""), "g.yaml", False, False)
    assert recipes.pinned_sources(git_compiled(""), "g.yaml", True, False) == []  # the step clones it
    sub = f"expected-commit: {COMMIT}\n      recurse-submodules: 'true'"
    with pytest.raises(DistrolessError, match="recurse-submodules: the step fetches the submodules itself"):
        recipes.pinned_sources(git_compiled(sub), "g.yaml", False, False)
    assert len(recipes.pinned_sources(git_compiled(sub), "g.yaml", True, False)) == 1
    # credentials in the URL reach the daemon (the source's URL) but never a name or a message
    src, = recipes.pinned_sources(git_compiled(repo="https://u:tok@git.example/r.git"), "g.yaml", False, False)
    assert "tok" not in src.state.output.vertex.meta.name
    with pytest.raises(DistrolessError) as e:
        recipes.pinned_sources(git_compiled("", repo="https://u:tok@git.example/r.git"), "g.yaml", False, False)
    assert "tok" not in str(e.value) and "https://git.example/r.git" in str(e.value)


def test_required_caps_are_exactly_what_the_graph_uses() -> None:
    """The caps checked up front (a daemon without one is refused by name before anything is
    solved, tests/test_buildkit_frontend.py shows it on dockerd 20.10) are the caps the graph's ops
    declare: a new op or option that needs another cap fails here until the list names it."""
    d = graph(recipes.parse_request({}), compiled())
    used = {cap for md in d.metadata.values() for cap, on in md.caps.items() if on}
    tool = llb.image("127.0.0.1:5000/fe:t", platform=llb.Platform("linux", "amd64", ""))
    two = recipes.repository_state([tool, tool], mergeop=False).marshal()  # two archs without MergeOp
    toolchain = recipes.host_environment(tool, compiled(), "127.0.0.1:5000/tc:t").marshal()
    used |= {cap for dd in (two, toolchain) for md in dd.metadata.values() for cap, on in md.caps.items() if on}
    assert sorted(used) == sorted(recipes.REQUIRED_LLB_CAPS)
    merged = recipes.repository_state([tool, tool], mergeop=True).marshal()  # where the daemon has it
    assert {cap for md in merged.metadata.values() for cap in md.caps} - used == {"mergeop"}
    git = graph(recipes.parse_request({}), git_compiled())  # checked when a recipe has a git source
    assert {cap for md in git.metadata.values() for cap, on in md.caps.items() if on} - used == set(recipes.GIT_LLB_CAPS)
