"""WORKSPACE setup for the distroless rules. Downloads nothing (bazel/README.md).

    load("@distroless//bazel:repositories.bzl", "distroless_dependencies")
    distroless_dependencies()

Works on Bazel 4.2.3 (Debian's bazel-bootstrap) and later WORKSPACE-mode Bazels.
"""

# Third-party modules the engine imports (top-level names). Missing optional ones only cost the
# features that need them (registry push, ELF parsing); the required ones fail the fetch early.
_REQUIRED = ["cryptography", "yaml", "isal", "cffi", "_cffi_backend", "pycparser", "re2"]
_OPTIONAL = [
    "_yaml",
    "zstandard",
    "nacl",
    "elftools",
    "requests",
    "urllib3",
    "idna",
    "certifi",
    "charset_normalizer",
]

# Run by the interpreter at fetch time: its version and extension suffix (the ABI the compiled
# modules need; actions check it), and where each module lives.
_PROBE = """
import importlib.util, os, sys, sysconfig
print("abi\\t%d.%d %s" % (sys.version_info[0], sys.version_info[1], sysconfig.get_config_var("EXT_SUFFIX")))
for name in sys.argv[1:]:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.origin:
        print("missing\\t" + name)
    elif spec.submodule_search_locations:
        print("dir\\t" + name + "\\t" + os.path.dirname(spec.origin))
    else:
        print("file\\t" + os.path.basename(spec.origin) + "\\t" + spec.origin)
"""

def _fetch_python(rctx):
    """The client interpreter repository rules run (never an action's)."""
    workspace = rctx.path(Label("//bazel:BUILD.bazel")).dirname.dirname  # this project's root
    python = rctx.os.environ.get("DISTROLESS_PYTHON", "") or rctx.attr.python
    if not python:
        venv = workspace.get_child(".venv").get_child("bin").get_child("python")
        python = str(venv) if venv.exists else "/usr/bin/python3"
    return python

def _python_repository_impl(rctx):
    python = _fetch_python(rctx)
    rctx.file("probe.py", _PROBE)
    res = rctx.execute([python, "-I", "probe.py"] + _REQUIRED + _OPTIONAL)
    if res.return_code != 0:
        fail("distroless: cannot run %s: %s" % (python, res.stderr))
    abi = ""
    missing = []
    for line in res.stdout.splitlines():
        parts = line.split("\t")
        if parts[0] == "abi":
            abi = parts[1]
        elif parts[0] == "missing":
            missing.append(parts[1])
        elif parts[0] in ("dir", "file"):
            rctx.symlink(parts[2], "site/" + parts[1])
    required_missing = [m for m in missing if m in _REQUIRED]
    if required_missing:
        fail("distroless: %s lacks %s; set DISTROLESS_PYTHON to a python3 (or venv) that has the " % (python, ", ".join(required_missing)) +
             "project's dependencies installed (`make test` creates .venv)")

    # No interpreter path is written anywhere: actions run the //bazel:python flag's interpreter
    # (default `python3` on the executor's PATH) and check it against this ABI record first.
    rctx.file("abi", abi + "\n")
    rctx.file("marker", "")
    rctx.file("BUILD.bazel", """package(default_visibility = ["//visibility:public"])

exports_files(["abi", "marker"])

filegroup(
    name = "site",
    srcs = glob(["site/**"], exclude = ["**/__pycache__/**", "**/*.pyc"]),
)
""")

distroless_python_repository = repository_rule(
    implementation = _python_repository_impl,
    attrs = {
        "python": attr.string(doc = "interpreter to take the modules from (default: the .venv beside these rules, else /usr/bin/python3)"),
    },
    environ = ["DISTROLESS_PYTHON"],
    local = True,
    doc = "Symlinks the engine's third-party modules from an installed interpreter into `site/`; records its ABI.",
)

def _host_toolchain_impl(rctx):
    # the engine's own definition of the identity (the melange step re-checks it at build time)
    script = rctx.path(Label("//bazel/private:host_identity.py"))
    res = rctx.execute([_fetch_python(rctx), "-I", "-B", str(script)])
    if res.return_code != 0:
        fail("distroless: cannot record the host toolchain: %s" % res.stderr)
    rctx.file("identity.txt", res.stdout)
    rctx.file("BUILD.bazel", """package(default_visibility = ["//visibility:public"])

exports_files(["identity.txt"])
""")

distroless_host_toolchain_repository = repository_rule(
    implementation = _host_toolchain_impl,
    attrs = {"python": attr.string()},
    environ = ["DISTROLESS_PYTHON"],
    local = True,
    configure = True,
    doc = "The host toolchain's identity (cc --version, libc version, machine), an input of every " +
          "`host_toolchain` package build so it is part of their action keys. `bazel sync --configure` re-records it.",
)

def distroless_dependencies(python = ""):
    """Declare what the rules need; nothing is downloaded.

    Args:
      python: interpreter whose installed modules the actions use (default: the workspace's
        .venv, else /usr/bin/python3; `DISTROLESS_PYTHON` in the environment overrides both).
    """
    if not native.existing_rule("distroless_python"):
        distroless_python_repository(name = "distroless_python", python = python)
    if not native.existing_rule("distroless_host_toolchain"):
        distroless_host_toolchain_repository(name = "distroless_host_toolchain", python = python)

    # Offline stand-ins for repositories Bazel 4.2.3 would otherwise try to download as soon
    # as a test rule or toolchain resolution needs them (reference notes, bazel.md §5).
    for name, files in _STUBS.items():
        if not native.existing_rule(name):
            _stub_repository(name = name, stub = name, files = files)

_STUBS = {
    "rules_java": ["BUILD", "WORKSPACE", "java/BUILD", "java/defs.bzl"],
    "rules_cc": ["BUILD", "WORKSPACE", "cc/BUILD", "cc/defs.bzl"],
    "remote_coverage_tools": ["BUILD", "WORKSPACE", "coverage_report_generator.sh"],
}

def _stub_repository_impl(rctx):
    # found from this file, so it works from the main workspace and as @distroless alike
    # (a local_repository path would be taken relative to the main workspace)
    src = rctx.path(Label("//bazel:repositories.bzl")).dirname.get_child("stubs").get_child(rctx.attr.stub)
    for f in rctx.attr.files:
        p = src
        for part in f.split("/"):
            p = p.get_child(part)
        rctx.symlink(p, f)

_stub_repository = repository_rule(
    implementation = _stub_repository_impl,
    attrs = {"stub": attr.string(mandatory = True), "files": attr.string_list(mandatory = True)},
    doc = "One of bazel/stubs/ as a repository.",
)
