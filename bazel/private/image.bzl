"""Image rules. Each is plain files between engine steps:

    expand (per APK, in apk_import) → assemble (per arch: layer tars + meta)
    → layer (per layer: compress) → image (per arch: OCI layout) → index → sign
    SBOMs: a separate small step over a layout (output group "sbom").
"""

load(":arch.bzl", "APK_ARCH", "ARCH_ALIASES")
load(":common.bzl", "TOOL_ATTR", "rpath", "run_script", "run_step", "shell_quote", "workspace_lock")
load(":providers.bzl", "ApkLockInfo", "DistrolessImageInfo", "LayerInfo")

def _apk_arch(a):
    name = ARCH_ALIASES.get(a, a)
    return APK_ARCH.get(name, name)

def _idx(i):
    return ("00" + str(i))[-3:]  # Starlark has no %03d

def _layer_slots(layering, budget, count):
    """How many layer outputs to declare (the config decides; unused slots stay empty)."""
    if layering == "single":
        return 1
    if layering == "origin" and budget > 0:
        return min(budget, count) + 1
    return count + 1  # one per package (or origin group) plus the top layer

def _sbom(ctx, layout, metas, name):
    out = ctx.actions.declare_directory(name + ".sbom")
    args = ctx.actions.args()
    args.add("--layout", layout.path)
    args.add_all("--meta", metas)
    args.add("--name", ctx.attr.image_name)
    for f in ctx.attr.sbom_formats:
        args.add("--format", f)
    args.add("--out-dir", out.path)
    run_step(ctx, "sbom", args, [layout] + metas, [out], "DistrolessSbom", "SBOM for %s" % ctx.label)
    return out

def _distroless_image_impl(ctx):
    info = ctx.attr.lock[ApkLockInfo]
    arch = _apk_arch(ctx.attr.arch) if ctx.attr.arch else info.arch
    if arch != info.arch:
        fail("arch %r, but %s holds %r packages" % (ctx.attr.arch, ctx.attr.lock.label, info.arch))
    pkgs = info.packages
    prefix = ctx.label.name + "/"

    # assemble: all expanded packages in lock order → one uncompressed tar per layer slot
    slots = _layer_slots(ctx.attr.layering, ctx.attr.layer_budget, len(pkgs))
    tars = [ctx.actions.declare_file("%slayers/%s.tar" % (prefix, _idx(i))) for i in range(slots)]
    meta = ctx.actions.declare_file(prefix + "meta.json")
    args = ctx.actions.args()
    args.add("--config", ctx.file.config)
    args.add("--lock", info.lock)
    args.add("--arch", arch)
    args.add("--layering", ctx.attr.layering)
    args.add_all("--expanded", [p.expanded for p in pkgs], expand_directories = False)
    args.add_all("--out-layer", tars)
    args.add("--out-meta", meta)
    inputs = [ctx.file.config, info.lock] + ctx.files.srcs + [p.expanded for p in pkgs]
    run_step(ctx, "assemble", args, inputs, tars + [meta], "DistrolessAssemble",
             "Assembling %s (%s)" % (ctx.label, arch), source_date_epoch = ctx.attr.source_date_epoch)

    # layer: one compression action per tar; unchanged tars are action-cache hits
    layers = []
    for i, tar in enumerate(tars):
        blob = ctx.actions.declare_file("%sblobs/%s.blob" % (prefix, _idx(i)))
        desc = ctx.actions.declare_file("%sblobs/%s.json" % (prefix, _idx(i)))
        a = ctx.actions.args()
        a.add("--tar", tar)
        a.add("--compression", ctx.attr.compression)
        a.add("--out-blob", blob)
        a.add("--out-desc", desc)
        run_step(ctx, "layer", a, [tar], [blob, desc], "DistrolessLayer", "Compressing layer %d of %s" % (i, ctx.label))
        layers.append(LayerInfo(blob = blob, descriptor = desc, tar = tar))

    # image: config + manifest (small JSON) → OCI layout
    layout = ctx.actions.declare_directory(prefix + "layout")
    digest = ctx.actions.declare_file(ctx.label.name + ".digest")
    a = ctx.actions.args()
    a.add("--meta", meta)
    for l in layers:
        a.add_all("--layer", [l.blob, l.descriptor])
    a.add("--out-layout", layout.path)
    a.add("--out-digest", digest)
    run_step(ctx, "image", a, [meta] + [l.blob for l in layers] + [l.descriptor for l in layers],
             [layout, digest], "DistrolessImage", "Writing image %s" % ctx.label)

    sbom = _sbom(ctx, layout, [meta], prefix + "image")
    return [
        DefaultInfo(files = depset([layout]), runfiles = ctx.runfiles(files = [layout])),
        DistrolessImageInfo(layout = layout, digest = digest, metas = [meta], layers = layers, sbom = sbom, signed = False),
        OutputGroupInfo(
            sbom = depset([sbom]),
            digest = depset([digest]),
            layers = depset([l.blob for l in layers]),
        ),
    ]

_IMAGE_ATTRS = dict(TOOL_ATTR, **{
    "image_name": attr.string(doc = "image reference recorded in the SBOMs (as `image build`'s tag)"),
    "sbom_formats": attr.string_list(default = ["spdx"], doc = "spdx, cyclonedx"),
})

distroless_image = rule(
    implementation = _distroless_image_impl,
    attrs = dict(_IMAGE_ATTRS, **{
        "config": attr.label(allow_single_file = [".yaml", ".yml", ".json"], mandatory = True),
        "srcs": attr.label_list(allow_files = True, doc = "files the config includes"),
        "lock": attr.label(providers = [ApkLockInfo], mandatory = True, doc = "e.g. @my_lock//:x86_64"),
        "arch": attr.string(doc = "default: the lock target's architecture"),
        "layering": attr.string(default = "single", values = ["single", "package", "origin"],
                                doc = "must match the config's `layering.strategy`"),
        "layer_budget": attr.int(default = 0, doc = "the config's `layering.budget` (origin)"),
        "compression": attr.string(default = "gzip", values = ["gzip", "zstd"]),
        "source_date_epoch": attr.string(doc = "as SOURCE_DATE_EPOCH for `image build`; empty: from the packages"),
    }),
    doc = "One architecture's image from an apko config and a lock, as an OCI layout.",
)

def _layout_of(target):
    if DistrolessImageInfo in target:
        return target[DistrolessImageInfo].layout
    files = target.files.to_list()
    for f in files:
        if f.is_directory:
            return f
    fail("%s: not an image (no DistrolessImageInfo and no layout directory)" % target.label)

def _distroless_image_index_impl(ctx):
    layout = ctx.actions.declare_directory(ctx.label.name + "/layout")
    digest = ctx.actions.declare_file(ctx.label.name + ".digest")
    args = ctx.actions.args()
    metas = []
    inputs = []
    for t in ctx.attr.images:
        im = t[DistrolessImageInfo]
        args.add_all("--image", [im.layout, im.metas[0]], expand_directories = False)
        metas.append(im.metas[0])
        inputs += [im.layout, im.metas[0]]
    args.add("--out-layout", layout.path)
    args.add("--out-digest", digest)
    run_step(ctx, "index", args, inputs, [layout, digest], "DistrolessIndex", "Writing index %s" % ctx.label)
    sbom = _sbom(ctx, layout, metas, ctx.label.name + "/index")
    return [
        DefaultInfo(files = depset([layout]), runfiles = ctx.runfiles(files = [layout])),
        DistrolessImageInfo(layout = layout, digest = digest, metas = metas, layers = [], sbom = sbom, signed = False),
        OutputGroupInfo(sbom = depset([sbom]), digest = depset([digest])),
    ]

distroless_image_index = rule(
    implementation = _distroless_image_index_impl,
    attrs = dict(_IMAGE_ATTRS, **{
        "images": attr.label_list(providers = [DistrolessImageInfo], mandatory = True, doc = "one per arch"),
    }),
    doc = "A multi-arch index over distroless_image targets (what `image build` writes for several archs).",
)

def _distroless_sign_impl(ctx):
    im = ctx.attr.image[DistrolessImageInfo]
    out = ctx.actions.declare_directory(ctx.label.name + "/layout")
    args = ctx.actions.args()
    args.add("--key", ctx.file.key)
    inputs = [ctx.file.key, im.layout]
    if ctx.file.password_file:
        args.add("--password-file", ctx.file.password_file)
        inputs.append(ctx.file.password_file)
    if ctx.attr.identity:
        args.add("--identity", ctx.attr.identity)
    args.add("--layout", im.layout.path)
    if ctx.attr.attest_sbom:
        if im.sbom == None:
            fail("%s has no SBOM to attest" % ctx.attr.image.label)
        args.add("--attest", im.sbom.path + "/sbom-index.spdx.json")
        args.add("--attest-type", "spdxjson")
        inputs.append(im.sbom)
    args.add("--out", out.path)
    run_step(ctx, "sign", args, inputs, [out], "DistrolessSign", "Signing %s" % ctx.label)
    return [
        DefaultInfo(files = depset([out]), runfiles = ctx.runfiles(files = [out])),
        DistrolessImageInfo(layout = out, digest = im.digest, metas = im.metas, layers = im.layers, sbom = im.sbom, signed = True),
        OutputGroupInfo(sbom = depset([im.sbom] if im.sbom else []), digest = depset([im.digest])),
    ]

distroless_sign = rule(
    implementation = _distroless_sign_impl,
    attrs = dict(TOOL_ATTR, **{
        "image": attr.label(providers = [DistrolessImageInfo], mandatory = True),
        "key": attr.label(allow_single_file = True, mandatory = True, doc = "cosign private key file"),
        "password_file": attr.label(allow_single_file = True, doc = "the key's password (one line); none: unencrypted key"),
        "identity": attr.string(doc = "docker-reference claimed in the signature"),
        "attest_sbom": attr.bool(default = False, doc = "also attach the index SBOM as a signed spdxjson attestation"),
    }),
    doc = "A build action: a copy of the image's layout with a cosign-compatible signature (and attestation).",
)

def _layout_root(ctx):
    t = ctx.attr.image
    if DistrolessImageInfo in t:
        return t[DistrolessImageInfo].layout, t[DistrolessImageInfo].layout.short_path, [t[DistrolessImageInfo].layout]
    files = t.files.to_list()
    for f in files:
        if f.is_directory:
            return f, f.short_path, [f]
        if f.basename == "oci-layout":  # a layout given as plain files (e.g. a checked-in one)
            return f, f.short_path[:-len("/oci-layout")], files
    fail("%s: not an OCI layout" % t.label)

def _distroless_verify_test_impl(ctx):
    _, root, files = _layout_root(ctx)
    args = ["--key", rpath(ctx.file.key), "--layout", '"$R/%s"' % root]
    if ctx.attr.attestations:
        args.append("--attestations")
    script, runfiles = run_script(ctx, ctx.label.name + ".sh", "verify", args, [ctx.file.key] + files)
    return [DefaultInfo(executable = script, runfiles = runfiles)]

distroless_verify_test = rule(
    implementation = _distroless_verify_test_impl,
    test = True,
    attrs = dict(TOOL_ATTR, **{
        "image": attr.label(mandatory = True, allow_files = True, doc = "a signed image, or files of an OCI layout"),
        "key": attr.label(allow_single_file = True, mandatory = True, doc = "cosign public key"),
        "attestations": attr.bool(default = False, doc = "also require valid attestations"),
    }),
    doc = "Passes only if the layout's signatures verify with `key` (offline, in the test sandbox).",
)

def _distroless_push_impl(ctx):
    layout, root, files = _layout_root(ctx)
    args = ["--layout", '"$R/%s"' % root, "--ref", shell_quote(ctx.attr.repository)]
    if ctx.attr.insecure:
        args.append("--insecure")
    script, runfiles = run_script(ctx, ctx.label.name + ".sh", "push", args, files)
    return [DefaultInfo(executable = script, runfiles = runfiles)]

distroless_push = rule(
    implementation = _distroless_push_impl,
    executable = True,
    attrs = dict(TOOL_ATTR, **{
        "image": attr.label(mandatory = True, allow_files = True),
        "repository": attr.string(mandatory = True, doc = "REGISTRY/REPO[:TAG]; `-- --ref X` overrides"),
        "insecure": attr.bool(default = False, doc = "plain http (loopback registries use http anyway)"),
    }),
    doc = "`bazel run`: push the layout (with its signatures) to a registry.",
)

def _distroless_load_impl(ctx):
    layout, root, files = _layout_root(ctx)
    args = ["--layout", '"$R/%s"' % root]
    for t in ctx.attr.repo_tags or [ctx.label.name + ":latest"]:
        args += ["--tag", shell_quote(t)]
    script, runfiles = run_script(ctx, ctx.label.name + ".sh", "load", args, files)
    return [DefaultInfo(executable = script, runfiles = runfiles)]

distroless_load = rule(
    implementation = _distroless_load_impl,
    executable = True,
    attrs = dict(TOOL_ATTR, **{
        "image": attr.label(mandatory = True, allow_files = True),
        "repo_tags": attr.string_list(doc = "repo:tag names for `docker load`"),
    }),
    doc = "`bazel run`: stream a docker-archive of the image into `docker load` (`-- --out F` writes it instead).",
)

def _distroless_lock_impl(ctx):
    return workspace_lock(ctx, "resolve", "--config", ctx.file.config, ".lock.json")

distroless_lock = rule(
    implementation = _distroless_lock_impl,
    executable = True,
    attrs = dict(TOOL_ATTR, **{
        "config": attr.label(allow_single_file = True, mandatory = True),
        "lock_path": attr.string(doc = "workspace-relative lock file to (re)write"),
    }),
    doc = "`bazel run`: re-lock a config with `distroless image lock` (writes into the workspace).",
)
