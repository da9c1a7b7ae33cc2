"""melange recipes: strict schema, substitution, built-in pipelines, compilation."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from distroless.errors import ConfigError, DistrolessError
from distroless.melange import subst
from distroless.melange.compile import (
    ArchSkipped, CompileOptions, builds_for_arch, compile_recipe, render_yaml, triplet)
from distroless.melange.pipeline import PipelineLibrary
from distroless.melange.recipe import load_recipe, load_recipe_text
from shared import FIXTURES

CONFIGS = FIXTURES / "configs"
WOLFI = sorted((CONFIGS / "wolfi-packages").glob("*.yaml"))
EXAMPLES = sorted((CONFIGS / "melange-examples").glob("*.yaml"))
# Example files whose package name is not the file stem (the examples reuse names).
EXAMPLE_NAMES = {
    "R-build": "cran-proxy", "build-ruby-webrick": "webrick", "capabilities-add-drop": "busybox",
    "cargo-build": "eza", "conditional": "hello", "gnu-hello": "hello", "go-build": "hello",
    "go-bump": "hello", "go-install": "hello", "npm-install": "cowsay", "options": "curl",
    "pnpm-install": "cowsay", "split-bin": "split-bin", "split-lib": "split-lib-test",
    "test-resources-example1": "gcc-13", "test-resources-example2": "tensorflow-lite",
    "test-resources-example3": "nginx-module-geoip", "test-xcover": "crane", "var-transforms": "bar",
    "vars": "hello", "working-directory": "hello",
}


def test_every_recipe_fixture_is_collected() -> None:
    """A missing fixture folder must fail, not parametrize nothing."""
    assert (len(WOLFI), len(EXAMPLES)) == (25, 30)
    assert {p.stem for p in EXAMPLES} >= set(EXAMPLE_NAMES)


def load(name: str):
    folder = "wolfi-packages" if (CONFIGS / "wolfi-packages" / name).exists() else "melange-examples"
    return load_recipe(CONFIGS / folder / name)


def build(name: str, arch: str = "x86_64", **kw):
    kw.setdefault("include_tests", False)
    return compile_recipe(load(name), CompileOptions(arch=arch, **kw))


# --- every fixture loads --------------------------------------------------------------------

@pytest.mark.parametrize("path", WOLFI, ids=lambda p: p.stem)
def test_wolfi_recipe_loads(path: Path) -> None:
    recipe = load_recipe(path)
    assert recipe.package.name == path.stem
    assert recipe.package.version  # kept as text
    raw = yaml.safe_load(path.read_text())
    assert len(recipe.pipeline) == len(raw.get("pipeline") or [])
    # the build user is always added
    assert any(u.username == "build" and u.uid == 1000 for u in recipe.environment.accounts.users)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_recipe_loads(path: Path) -> None:
    recipe = load_recipe(path)
    assert recipe.package.name == EXAMPLE_NAMES.get(path.stem, path.stem)
    assert recipe.environment.environment["HOME"] == "/home/build"


def test_versions_and_range_keys_stay_text() -> None:
    assert load("sed.yaml").package.version == "4.10"
    assert load("gnu-hello.yaml").package.version == "2.12"
    crash = load("py3-crashtest.yaml")
    names = [sp.name for sp in crash.subpackages]
    assert names == ["py3.10-crashtest", "py3.11-crashtest", "py3.12-crashtest",
                     "py3.13-crashtest", "py3-supported-crashtest"]
    first = crash.subpackages[0]
    assert first.description == "python3.10 version of crashtest"
    assert first.dependencies.provider_priority == "310"
    assert first.pipeline[0].with_["python"] == "python3.10"
    assert first.test.pipeline[1].with_ == {"python": "python3.10", "import": "crashtest"}


def test_range_items_sorted_bytewise() -> None:
    minimal = load("minimal.yaml")
    assert [sp.name for sp in minimal.subpackages] == [
        "lagomorph-hare", "lagomorph-pika", "lagomorph-rabbit"]
    assert minimal.subpackages[2].description == "data about the lagomorph sylvìlagus floridanus"
    # targets.* are compile-time only: the parse-time pass leaves them for later
    assert "${{targets.contextdir}}/rabbit" in minimal.subpackages[2].pipeline[0].runs


def test_var_transforms() -> None:
    assert load("busybox.yaml").pipeline[0].with_["tag"] == "1_38_0"
    assert load("var-transforms.yaml").pipeline[0].with_["uri"].endswith("/1.2.3+4.tar.gz")
    assert load("vars.yaml").subpackages[0].name == "subpackage-2.12"
    assert load("R-build.yaml").pipeline[0].with_["tag"] == "0.4-27"


def test_go_expand_rules() -> None:
    m = subst.go_regexp(r"(\d+)\.(?P<minor>\d+)").search("v1.22")
    assert subst.go_expand("${1}x-$minor-$$-$1x-${9}", m) == "1x-22-$--"
    # an empty match right after a match is not replaced (Go), unlike Python's re.sub
    assert subst.go_replace_all(subst.go_regexp("x*"), "abxd", "-") == "-a-b-d-"
    # Go's $ is end of text only
    assert subst.apply_transform("1.2\n", r"2$", "9") == "1.2\n"


def test_substitute_syntax() -> None:
    table = {"${{a.b}}": "X"}
    assert subst.substitute("${{ a.b }}-${HOME}-$(pwd)", table) == "X-${HOME}-$(pwd)"
    with pytest.raises(subst.SubstError, match="variable nope not defined"):
        subst.substitute("${{nope}}", table)
    with pytest.raises(subst.SubstError, match="unterminated"):
        subst.substitute("${{a.b", table)
    assert subst.replace_exact("${{a.b}} ${{c}}", table) == "X ${{c}}"
    assert subst.substitute('${{a.b}}', {"${{a.b}}": 'say "hi"'}, quote=True) == '"say \\"hi\\""'


def test_conditions() -> None:
    assert subst.evaluate("'a' == 'a' && 'b' != 'c'")
    # && and || have equal precedence, left to right: (T || T) && F
    assert not subst.evaluate("'a' == 'a' || 'a' == 'a' && 'a' == 'b'")
    assert subst.evaluate("('a' == 'b') || \"x\\n\" == 'x\n'") is True  # escapes decode
    assert subst.evaluate("${{x}} == 'y'", {"${{x}}": "y"})
    with pytest.raises(subst.CondError):
        subst.evaluate("hello == 'hello'")


# --- compiling ---------------------------------------------------------------------------

def test_autoconf_configure_flags() -> None:
    compiled = build("gnu-hello.yaml", arch="aarch64")
    scripts = [st for st in compiled.main.steps if st.chain == ("autoconf/configure",)]
    assert len(scripts) == 1
    script = scripts[0].script
    for flag in ("--host=\"aarch64-unknown-linux-gnu\"", "--build=\"aarch64-unknown-linux-gnu\"",
                 "--prefix=/usr", "--sysconfdir=/etc", "--libdir=/usr/lib",
                 "--mandir=/usr/share/man", "--infodir=/usr/share/info", "--localstatedir=/var"):
        assert flag in script
    assert script.startswith("set -eo pipefail\n[ -d '/home/build' ] || mkdir -p '/home/build'\n")
    assert script.endswith("\nexit 0")
    install = [st for st in compiled.main.steps if st.chain == ("autoconf/make-install",)][0]
    assert 'DESTDIR="/home/build/melange-out/hello"' in install.script
    # needs of the used pipelines join the build environment
    assert {"wget", "autoconf", "automake", "libtool", "binutils", "scanelf"} <= set(
        compiled.environment.contents.packages)


def test_configure_opts_and_build_option() -> None:
    default = build("options.yaml")
    configure = [st for st in default.main.steps if st.chain == ("autoconf/configure",)][0]
    assert "--with-openssl \\\n--without-rustls" in configure.script
    names = [p.name for p in default.packages]
    assert names == ["curl", "curl-dev", "curl-doc", "libcurl-openssl4"]
    rustls = build("options.yaml", build_options=("rustls",))
    assert [p.name for p in rustls.packages][-1] == "libcurl-rustls4"
    assert "rustls-ffi" in rustls.environment.contents.packages
    assert "openssl-dev" not in rustls.environment.contents.packages
    sub = rustls.packages[-1]
    assert sub.apk.provider_priority == 10 and sub.apk.provides == ["libcurl4=7.87.1"]
    mv = sub.steps[0].script
    assert 'mkdir -p "/home/build/melange-out/libcurl-rustls4"/usr/lib' in mv
    assert '"/home/build/melange-out/curl"/usr/lib/libcurl.so.*' in mv


def test_apk_metadata_and_scriptlets() -> None:
    compiled = build("busybox.yaml")
    main = compiled.main.apk
    assert (main.name, main.version, main.arch, main.origin) == ("busybox", "1.38.0-r1", "x86_64", "busybox")
    assert main.license == "GPL-2.0-only" and compiled.main.licenses == ("GPL-2.0-only",)
    assert main.provider_priority == 10
    assert main.depends == ["merged-bin", "merged-sbin", "merged-usrsbin", "wolfi-baselayout"]
    assert main.triggers == ["/bin", "/sbin", "/usr/bin", "/usr/sbin"]
    assert compiled.main.scriptlets[".trigger"].startswith(b"#!/usr/bin/busybox sh\n")
    sub = compiled.packages[1].apk
    assert sub.origin == "busybox" and sub.version == "1.38.0-r1"


def test_subpackage_split_and_contextdir() -> None:
    compiled = build("sshfs.yaml")
    doc = compiled.packages[1]
    assert doc.name == "sshfs-doc"
    body = [st for st in doc.steps if st.chain == ("split/manpages",)][0].script
    assert 'src="/home/build/melange-out/sshfs"' in body
    assert 'dst="/home/build/melange-out/sshfs-doc"' in body


def test_working_directory_and_assertions() -> None:
    compiled = build("working-directory.yaml")
    workdirs = [st.workdir for st in compiled.main.steps]
    assert workdirs == ["/home/build/foo", "/home/build/bar", "/home/build/bar",
                        "/home/build/baz", "/home/build"]
    busybox = build("busybox.yaml")
    assert busybox.main.steps[0].workdir == "/home/build/build"


def test_arch_filter_and_triplets() -> None:
    assert triplet("x86_64", "gnu") == "x86_64-pc-linux-gnu"
    assert triplet("aarch64", "musl", rust=True) == "aarch64-unknown-linux-musl"
    recipe = load("one-arch.yaml")
    assert builds_for_arch(recipe, "amd64") and not builds_for_arch(recipe, "aarch64")
    with pytest.raises(ArchSkipped):
        compile_recipe(recipe, CompileOptions(arch="aarch64"))


def test_melange_yaml_is_compiled_config() -> None:
    compiled = build("gnu-hello.yaml")
    text = compiled.melange_yaml()
    data = yaml.safe_load(text)
    assert list(data) == ["package", "environment", "pipeline"]
    assert data["package"]["version"] == "2.12"
    fetch = data["pipeline"][0]
    assert fetch["uses"] == "fetch" and "inputs" not in fetch and "needs" not in fetch
    assert fetch["with"]["purl-name"] == "hello"
    assert "strip-components" not in fetch["with"]  # equal to the default
    configure = data["pipeline"][1]
    assert configure["with"] == {"host": "x86_64-pc-linux-gnu", "build": "x86_64-pc-linux-gnu"}
    assert "\n  - uses: fetch\n" in text  # 2-space indentation, lists indented
    assert render_yaml(compiled.recipe) == text


def test_user_pipeline_dir_wins(tmp_path: Path) -> None:
    (tmp_path / "strip.yaml").write_text("pipeline:\n  - runs: echo custom-strip ${{inputs.x}}\n"
                                         "inputs:\n  x:\n    default: yes\n")
    compiled = build("gnu-hello.yaml", pipeline_dirs=(tmp_path,))
    assert any("echo custom-strip yes" in st.runs for st in compiled.main.steps)
    assert "binutils" not in compiled.environment.contents.packages
    assert "strip" in PipelineLibrary.create().available()


def test_tests_compile_with_needs() -> None:
    compiled = build("split-lib.yaml", include_tests=True)
    sub = compiled.packages[1]
    assert "split-lib-test-libs" in sub.test_environment.contents.packages
    assert compiled.main.test_steps and "test -L /usr/lib/libtest.so" in compiled.main.test_steps[0].runs


# --- located errors -------------------------------------------------------------------------

BASE = "package:\n  name: demo\n  version: 1.0.0\n  epoch: 0\n"


def test_unknown_key_is_located() -> None:
    text = BASE + "pipeline:\n  - runs: echo\n    workdir: /tmp\n"
    with pytest.raises(ConfigError) as exc:
        load_recipe_text(text, "demo.yaml")
    msg = str(exc.value)
    assert msg.startswith("demo.yaml:7:5: pipeline[0].workdir: unknown key 'workdir'")
    assert "working-directory" in msg


def test_unknown_package_key_is_located() -> None:
    with pytest.raises(ConfigError, match=r"demo.yaml:5:3: package.licence: unknown key"):
        load_recipe_text(BASE + "  licence: MIT\n", "demo.yaml")


def test_undefined_variable_is_located() -> None:
    text = BASE + "pipeline:\n  - runs: |\n      echo ${{vars.missing}}\n"
    recipe = load_recipe_text(text, "demo.yaml")  # parse time leaves unknown tokens alone
    with pytest.raises(ConfigError, match=r"demo.yaml:6:11: pipeline\[0\].runs: .*variable vars.missing not defined"):
        compile_recipe(recipe)
    strict = BASE + "  dependencies:\n    runtime:\n      - foo-${{vars.nope}}\n"
    with pytest.raises(ConfigError, match=r"demo.yaml:\d+:\d+: .*variable vars.nope not defined"):
        load_recipe_text(strict, "demo.yaml")


def test_missing_required_input_is_located() -> None:
    text = BASE + "pipeline:\n  - uses: fetch\n    with:\n      expected-none: x\n"
    recipe = load_recipe_text(text, "demo.yaml")
    with pytest.raises(ConfigError, match=r"demo.yaml:\d+:\d+: pipeline\[0\].with: required input 'uri'"):
        compile_recipe(recipe)


def test_undefined_input_and_bad_checksum() -> None:
    text = BASE + "pipeline:\n  - uses: strip\n    with:\n      nope: x\n"
    with pytest.raises(ConfigError, match=r"demo.yaml:8:\d+: pipeline\[0\].with.nope: undefined input 'nope'"):
        compile_recipe(load_recipe_text(text, "demo.yaml"))
    bad = BASE + "pipeline:\n  - uses: fetch\n    with:\n      uri: x\n      expected-sha256: abc\n"
    with pytest.raises(ConfigError, match="must be 64 hex characters"):
        compile_recipe(load_recipe_text(bad, "demo.yaml"))


def test_bad_if_is_located() -> None:
    text = BASE + "pipeline:\n  - if: ${{build.arch}} = 'x86_64'\n    runs: echo\n"
    with pytest.raises(ConfigError, match=r"demo.yaml:6:9: pipeline\[0\].if: evaluating conditional"):
        compile_recipe(load_recipe_text(text, "demo.yaml"))


def test_conditional_example_unquoted_package_name_fails() -> None:
    # package.* is substituted unquoted at parse time, so `hello == 'hello'` does not parse
    with pytest.raises(ConfigError, match="conditional.yaml:34:9"):
        build("conditional.yaml")


def test_validation_errors() -> None:
    with pytest.raises(ConfigError, match="with but no uses"):
        load_recipe_text(BASE + "pipeline:\n  - with: {a: b}\n", "demo.yaml")
    with pytest.raises(ConfigError, match="same name as main package"):
        load_recipe_text(BASE + "subpackages:\n  - name: demo\n", "demo.yaml")
    with pytest.raises(ConfigError, match="undefined range"):
        load_recipe_text(BASE + "subpackages:\n  - name: x\n    range: nope\n", "demo.yaml")
    with pytest.raises(ConfigError, match="expected an integer"):
        load_recipe_text(BASE.replace("epoch: 0", "epoch: one"), "demo.yaml")
    assert issubclass(ArchSkipped, DistrolessError)
