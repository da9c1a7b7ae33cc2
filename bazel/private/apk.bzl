"""Package rules: import (+ expand) a locked APK, pack a tree, build a melange recipe, index."""

load(":common.bzl", "TOOL_ATTR", "run_step", "shell_quote", "workspace_lock")
load(":providers.bzl", "ApkInfo", "ApkLockInfo")

def _expand(ctx, apk, checksum, sha256, name):
    out = ctx.actions.declare_directory(name)
    args = ctx.actions.args()
    args.add("--apk", apk)
    args.add("--checksum", checksum)
    args.add("--sha256", sha256)
    args.add("--out", out.path)
    run_step(ctx, "expand", args, [apk], [out], "DistrolessExpand", "Expanding %s" % apk.short_path)
    return out

def _apk_import_impl(ctx):
    expanded = _expand(ctx, ctx.file.apk, ctx.attr.checksum, ctx.attr.sha256, ctx.label.name + ".expanded")
    return [
        DefaultInfo(files = depset([ctx.file.apk])),
        ApkInfo(
            apk = ctx.file.apk,
            package_name = ctx.attr.package_name,
            version = ctx.attr.version,
            arch = ctx.attr.arch,
            checksum = ctx.attr.checksum,
            sha256 = ctx.attr.sha256,
            expanded = expanded,
        ),
        OutputGroupInfo(expanded = depset([expanded])),
    ]

apk_import = rule(
    implementation = _apk_import_impl,
    attrs = dict(TOOL_ATTR, **{
        "apk": attr.label(allow_single_file = [".apk"], mandatory = True),
        "package_name": attr.string(mandatory = True),
        "version": attr.string(mandatory = True),
        "arch": attr.string(mandatory = True),
        "checksum": attr.string(),
        "sha256": attr.string(),
    }),
    doc = "A locked .apk; its expansion is one action, shared by every image that installs it.",
)

def _apk_lock_impl(ctx):
    return [
        DefaultInfo(files = depset([p[ApkInfo].apk for p in ctx.attr.packages])),
        ApkLockInfo(lock = ctx.file.lock, arch = ctx.attr.arch, packages = [p[ApkInfo] for p in ctx.attr.packages]),
    ]

apk_lock = rule(
    implementation = _apk_lock_impl,
    attrs = {
        "lock": attr.label(allow_single_file = True, mandatory = True),
        "arch": attr.string(mandatory = True),
        "packages": attr.label_list(providers = [ApkInfo], doc = "in lock order"),
    },
    doc = "One architecture of a lock (generated into the hub by apk_lock_repositories).",
)

def _rel_path(f, root):
    p = f.short_path
    if root:
        prefix = root.rstrip("/") + "/"
        if not p.startswith(prefix):
            fail("%s is not under root %r" % (p, root))
        return p[len(prefix):]
    return p

def _apk_package_impl(ctx):
    name = ctx.attr.package_name or ctx.label.name
    out = ctx.actions.declare_file(ctx.attr.out or "%s-%s.apk" % (name, ctx.attr.version))
    root = ctx.attr.root if ctx.attr.root != "." else ctx.label.package
    args = ctx.actions.args()
    for f in ctx.files.srcs:
        args.add("--file", "%s=%s" % (_rel_path(f, root), f.path))
    args.add("--")
    args.add_all(["--name", name, "--version", ctx.attr.version, "--arch", ctx.attr.arch])
    args.add_all(["--description", ctx.attr.description, "--license", ctx.attr.license])
    if ctx.attr.origin:
        args.add_all(["--origin", ctx.attr.origin])
    # one value per flag occurrence (cobra semantics; a flag never takes several words)
    args.add_all(ctx.attr.depends, before_each = "--depends")
    args.add_all(ctx.attr.provides, before_each = "--provides")
    inputs = list(ctx.files.srcs)
    if ctx.file.signing_key:
        args.add("--signing-key", ctx.file.signing_key)
        inputs.append(ctx.file.signing_key)
    args.add("-o", out)
    run_step(ctx, "pack", args, inputs, [out], "DistrolessPack", "Packing %s" % out.short_path,
             source_date_epoch = ctx.attr.source_date_epoch)
    return [
        DefaultInfo(files = depset([out])),
        ApkInfo(apk = out, package_name = name, version = ctx.attr.version, arch = ctx.attr.arch,
                checksum = "", sha256 = "", expanded = None),
    ]

apk_package = rule(
    implementation = _apk_package_impl,
    attrs = dict(TOOL_ATTR, **{
        "srcs": attr.label_list(allow_files = True, doc = "the package's files"),
        "root": attr.string(default = ".", doc = "workspace-relative directory the files are under ('.' = this package)"),
        "package_name": attr.string(doc = "default: the target name"),
        "version": attr.string(mandatory = True),
        "out": attr.string(doc = "output path (default <name>-<version>.apk)"),
        "arch": attr.string(default = "x86_64"),
        "description": attr.string(),
        "license": attr.string(),
        "origin": attr.string(),
        "depends": attr.string_list(),
        "provides": attr.string_list(),
        "signing_key": attr.label(allow_single_file = True, doc = "RSA key (apk signing)"),
        "source_date_epoch": attr.string(default = "0", doc = "file mtimes and build date"),
    }),
    doc = "Pack files into a signed .apk (`distroless package create`).",
)

def _apk_index_impl(ctx):
    out = ctx.actions.declare_file(ctx.attr.out or (ctx.label.name + "/APKINDEX.tar.gz"))
    apks = [a[ApkInfo].apk if ApkInfo in a else None for a in ctx.attr.apks]
    apks = [a for a in apks if a] + [f for a in ctx.attr.apks if ApkInfo not in a for f in a.files.to_list()]
    args = ctx.actions.args()
    args.add("--apk")
    args.add_all(apks)
    args.add("-o", out)
    if ctx.attr.arch:
        args.add("--arch", ctx.attr.arch)
    if ctx.attr.description:
        args.add("--description", ctx.attr.description)
    inputs = list(apks)
    if ctx.file.signing_key:
        args.add("--signing-key", ctx.file.signing_key)
        inputs.append(ctx.file.signing_key)
    run_step(ctx, "apk-index", args, inputs, [out], "DistrolessApkIndex", "Indexing %s" % out.short_path,
             source_date_epoch = ctx.attr.source_date_epoch)
    return [DefaultInfo(files = depset([out]))]

apk_index = rule(
    implementation = _apk_index_impl,
    attrs = dict(TOOL_ATTR, **{
        "apks": attr.label_list(allow_files = [".apk"], mandatory = True),
        "arch": attr.string(),
        "description": attr.string(),
        "signing_key": attr.label(allow_single_file = True),
        "out": attr.string(doc = "default: <name>/APKINDEX.tar.gz"),
        "source_date_epoch": attr.string(default = "0"),
    }),
    doc = "A signed APKINDEX.tar.gz over packages (`distroless package index`).",
)

def _melange_package_impl(ctx):
    name = ctx.attr.package_name or ctx.label.name
    out = ctx.actions.declare_file(ctx.attr.out or "%s-%s.apk" % (name, ctx.attr.version))
    root = ctx.attr.source_root if ctx.attr.source_root != "." else ctx.file.recipe.dirname
    if ctx.file.recipe.short_path.startswith("../"):
        root = ctx.attr.source_root
    args = ctx.actions.args()
    args.add("--recipe", ctx.file.recipe)
    for f in ctx.files.srcs:
        args.add("--file", "%s=%s" % (_rel_path(f, root), f.path))
    args.add("--out", out)
    inputs = [ctx.file.recipe] + ctx.files.srcs

    if ctx.attr.environment:
        # hermetic: the environment is the lock's packages, declared inputs pinned by sha256; the
        # step installs them and runs the pipelines in its bubblewrap sandbox, nested in Bazel's
        # linux-sandbox or a remote worker's (no network in either), so the action is remotable
        if ctx.attr.host_toolchain:
            fail("%s: environment and host_toolchain exclude each other" % ctx.label)
        env = ctx.attr.environment[ApkLockInfo]
        if env.arch != ctx.attr.arch:
            fail("%s: the environment is locked for %s, the package is built for %s" % (ctx.label, env.arch, ctx.attr.arch))
        args.add("--env-lock", env.lock)
        inputs.append(env.lock)
        for p in env.packages:
            args.add("--env-apk", p.apk)
            inputs.append(p.apk)
        requirements = {"block-network": "1"}
    elif not ctx.attr.host_toolchain:
        fail("%s: give the build environment as a lock (environment = \"@<hub>//:<arch>\", see melange_lock) " % ctx.label +
             "or build with the host toolchain (host_toolchain = True)")
    else:
        # the host toolchain's build runs the engine's own sandbox with the host's /usr overlaid,
        # which needs root's mounts: not nested in Bazel's linux-sandbox; the action stays cacheable
        requirements = {"no-sandbox": "1"}
    if ctx.attr.host_toolchain:
        # the host's compiler and libc are part of the result: their identity is an input (so in
        # the action key; the step refuses a host that differs), and no other machine may run it
        args.add("--host-identity", ctx.file._host_identity)
        inputs.append(ctx.file._host_identity)
        requirements["no-remote-exec"] = "1"
    args.add("--")
    args.add_all(["--arch", ctx.attr.arch, "--runner", ctx.attr.runner])
    if ctx.attr.host_toolchain:
        args.add("--host-toolchain")
    if ctx.file.signing_key:
        args.add("--signing-key", ctx.file.signing_key)
        inputs.append(ctx.file.signing_key)
    run_step(ctx, "melange", args, inputs, [out], "DistrolessMelange", "Building %s" % ctx.file.recipe.short_path,
             source_date_epoch = ctx.attr.source_date_epoch, execution_requirements = requirements)
    return [
        DefaultInfo(files = depset([out])),
        ApkInfo(apk = out, package_name = name, version = ctx.attr.version, arch = ctx.attr.arch,
                checksum = "", sha256 = "", expanded = None),
    ]

melange_package = rule(
    implementation = _melange_package_impl,
    attrs = dict(TOOL_ATTR, **{
        "recipe": attr.label(allow_single_file = [".yaml", ".yml"], mandatory = True),
        "srcs": attr.label_list(allow_files = True, doc = "the recipe's source directory contents"),
        "source_root": attr.string(default = ".", doc = "workspace-relative directory of srcs ('.' = the recipe's)"),
        "package_name": attr.string(doc = "default: the target name"),
        "version": attr.string(mandatory = True, doc = "full version, e.g. 0.1.0-r0"),
        "out": attr.string(doc = "output path (default <name>-<version>.apk)"),
        "arch": attr.string(default = "x86_64"),
        "runner": attr.string(default = "bubblewrap", values = ["bubblewrap", "docker"]),
        "host_toolchain": attr.bool(default = False, doc = "build with the host's /usr (offline; not hermetic: " +
                                                        "no-remote-exec, and the host compiler/libc identity is in the key)"),
        "environment": attr.label(providers = [ApkLockInfo], doc = "the build environment: one arch of a " +
                                                                     "lock hub (`@<hub>//:<arch>`, from melange_lock's lock); hermetic and remotable"),
        "_host_identity": attr.label(default = "@distroless_host_toolchain//:identity.txt", allow_single_file = True),
        "signing_key": attr.label(allow_single_file = True),
        "source_date_epoch": attr.string(default = "0"),
    }),
    doc = "A melange recipe → its .apk (`distroless package build` in the engine's sandbox).",
)

def _melange_lock_impl(ctx):
    return workspace_lock(ctx, "melange-lock", "--recipe", ctx.file.recipe, ".env.lock.json",
                          ["--", "--arch", shell_quote(ctx.attr.arch)])

melange_lock = rule(
    implementation = _melange_lock_impl,
    executable = True,
    attrs = dict(TOOL_ATTR, **{
        "recipe": attr.label(allow_single_file = [".yaml", ".yml"], mandatory = True),
        "lock_path": attr.string(doc = "workspace-relative lock file to (re)write"),
        "arch": attr.string(default = "x86_64"),
    }),
    doc = "`bazel run`: resolve and pin a recipe's build environment (`distroless package lock`) into the workspace.",
)
