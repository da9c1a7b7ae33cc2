"""A lock file (apko.lock.json v1 + per-package `sha256`) → one repository per APK.

WORKSPACE, two steps (a repository rule cannot declare other repositories):

    load("@distroless//bazel:lock.bzl", "apk_lock_repositories")
    apk_lock_repositories(name = "demo_lock", lock = "//examples/bazel:demo.lock.json")
    load("@demo_lock//:repositories.bzl", demo_lock_apks = "repositories")
    demo_lock_apks()

Each APK is fetched by Bazel's downloader pinned by the whole file's sha256, so it lands in
(and is later served from) the repository cache, `--distdir`, or a remote downloader; a URL
change alone does not refetch. Mirrors: `DISTROLESS_APK_MIRRORS` (space-separated base URLs,
tried first with the package URL's path) or the `mirrors` attribute.

The hub `@<name>` has one target per architecture (`@demo_lock//:x86_64`) carrying the packages
in lock order (`ApkLockInfo`), `:lock` (the lock file) and `:keys`.
"""

_PRIVATE = "//bazel/private:apk.bzl"

def _label_str(rel):
    # "@//..." names the main repository from inside another one (Bazel 4 and later)
    l = Label(rel)
    return "@%s//%s:%s" % (l.workspace_name, l.package, l.name)

def _sanitize(s):
    out = ""
    for c in s.elems():
        out += c if c.isalnum() or c in "-_." else "_"
    return out

def _repo_name(hub, pkg):
    return "%s__%s__%s__%s" % (hub, _sanitize(pkg["architecture"]), _sanitize(pkg["name"]), _sanitize(pkg["version"]))

def _url_path(url):
    # "https://host/a/b.apk" → "a/b.apk"
    rest = url.split("://", 1)[-1]
    return rest.split("/", 1)[1] if "/" in rest else rest

def _apk_lock_repositories_impl(rctx):
    text = rctx.read(rctx.attr.lock)
    lock = json.decode(text)
    if lock.get("version") != "v1":
        fail("%s: not an apko lock v1" % rctx.attr.lock)
    rctx.file("lock.json", text)  # a copy, not a symlink: the repo stays self-contained
    contents = lock["contents"]
    hub = rctx.attr.name
    rule = _label_str(_PRIVATE)

    decls = []
    by_arch = {}
    for p in contents.get("packages", []):
        if not p.get("sha256"):
            fail("%s: %s-%s has no sha256; re-lock with `distroless image lock`" % (rctx.attr.lock, p["name"], p["version"]))
        repo = _repo_name(hub, p)
        decls.append(struct(repo = repo, pkg = p))
        by_arch.setdefault(p["architecture"], []).append(repo)

    lines = [
        '"""Generated from %s: one repository per locked APK."""' % rctx.attr.lock,
        'load("%s", "apk_archive")' % _label_str("//bazel:lock.bzl"),
        "",
        "def repositories(mirrors = []):",
    ]
    for d in decls:
        p = d.pkg
        lines.append("    apk_archive(name = %r, url = %r, sha256 = %r, package_name = %r, version = %r, arch = %r, checksum = %r, mirrors = mirrors + %r)" % (
            d.repo,
            p["url"],
            p["sha256"],
            p["name"],
            p["version"],
            p["architecture"],
            p["checksum"],
            rctx.attr.mirrors,
        ))
    if not decls:
        lines.append("    pass")
    rctx.file("repositories.bzl", "\n".join(lines) + "\n")

    keys = []
    for k in contents.get("keyring", []):
        if k.get("content"):
            name = "keys/" + k["name"].split("/")[-1]
            rctx.file(name, k["content"])
            keys.append(name)

    build = [
        'load("%s", "apk_lock")' % rule,
        'package(default_visibility = ["//visibility:public"])',
        'exports_files(["lock.json", "repositories.bzl"])',
        'filegroup(name = "lock", srcs = ["lock.json"])',
        "filegroup(name = \"keys\", srcs = %r)" % keys,
    ]
    for arch, repos in by_arch.items():
        build.append("apk_lock(name = %r, arch = %r, lock = \"lock.json\", packages = %r)" % (
            arch,
            arch,
            ["@%s//:apk" % r for r in repos],
        ))
    rctx.file("BUILD.bazel", "\n".join(build) + "\n")

apk_lock_repositories = repository_rule(
    implementation = _apk_lock_repositories_impl,
    attrs = {
        "lock": attr.label(mandatory = True, allow_single_file = True),
        "mirrors": attr.string_list(doc = "base URLs tried before each package URL"),
    },
    doc = "The hub of a lock file; call its repositories.bzl `repositories()` next.",
)

def _apk_archive_impl(rctx):
    env = rctx.os.environ.get("DISTROLESS_APK_MIRRORS", "")
    mirrors = [m for m in env.split(" ") if m] + rctx.attr.mirrors
    path = _url_path(rctx.attr.url)
    urls = [m.rstrip("/") + "/" + path for m in mirrors]
    if "://" in rctx.attr.url:
        urls.append(rctx.attr.url)
    if not urls:
        fail("%s: %s is not a URL and no mirror is set (DISTROLESS_APK_MIRRORS)" % (rctx.attr.name, rctx.attr.url))
    rctx.download(urls, output = "pkg.apk", sha256 = rctx.attr.sha256)
    rctx.file("BUILD.bazel", "\n".join([
        'load("%s", "apk_import")' % _label_str(_PRIVATE),
        'package(default_visibility = ["//visibility:public"])',
        'exports_files(["pkg.apk"])',
        "apk_import(name = \"apk\", apk = \"pkg.apk\", package_name = %r, version = %r, arch = %r, checksum = %r, sha256 = %r)" % (
            rctx.attr.package_name,
            rctx.attr.version,
            rctx.attr.arch,
            rctx.attr.checksum,
            rctx.attr.sha256,
        ),
    ]) + "\n")

apk_archive = repository_rule(
    implementation = _apk_archive_impl,
    attrs = {
        "url": attr.string(mandatory = True),
        "sha256": attr.string(mandatory = True),
        "package_name": attr.string(mandatory = True),
        "version": attr.string(mandatory = True),
        "arch": attr.string(mandatory = True),
        "checksum": attr.string(mandatory = True),
        "mirrors": attr.string_list(),
    },
    environ = ["DISTROLESS_APK_MIRRORS"],
    doc = "One APK, downloaded pinned by sha256, with an `apk_import` target `:apk`.",
)
