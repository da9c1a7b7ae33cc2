"""Synthetic packages for the monorepo example: deterministic pseudo-random file contents
written by Bazel itself (no process, so the action runs anywhere), packed and signed by
`apk_package`. A package's bytes depend only on its name, version and size."""

load("@distroless//bazel:defs.bzl", "apk_package")

def _content(seed, size):
    # a 31-bit LCG rendered as decimal digits (Bazel 4's Starlark has no %x): incompressible
    # enough that layer sizes mean something
    x = seed & 0x7fffffff
    chunks = []
    for _ in range((size + 9) // 10):
        x = (x * 1103515245 + 12345) & 0x7fffffff
        chunks.append(str(x + 1000000000))  # always 10 digits
    return "".join(chunks)[:size]

def _seed(s):
    return hash(s)  # Starlark's string hash is specified (Java's String.hashCode): stable

def _synthetic_files_impl(ctx):
    out = ctx.actions.declare_file(ctx.attr.path)
    ctx.actions.write(out, _content(_seed(ctx.attr.seed), ctx.attr.size))
    return [DefaultInfo(files = depset([out]))]

synthetic_files = rule(
    implementation = _synthetic_files_impl,
    attrs = {
        "path": attr.string(mandatory = True),
        "seed": attr.string(mandatory = True),
        "size": attr.int(mandatory = True),
    },
)

def synthetic_package(name, version, size, depends = [], signing_key = None):
    """`name`-`version`.apk holding usr/share/<name>/data (`size` bytes)."""
    synthetic_files(
        name = name + "_files",
        path = name + "_root/usr/share/%s/data" % name,
        seed = name + "-" + version,
        size = size,
    )
    apk_package(
        name = name,
        srcs = [":" + name + "_files"],
        root = native.package_name() + "/" + name + "_root",
        version = version,
        out = "mono/x86_64/%s-%s.apk" % (name, version),
        depends = depends,
        signing_key = signing_key,
        description = "synthetic package for the monorepo example",
        license = "CC0-1.0",
        source_date_epoch = "1700000000",
    )
