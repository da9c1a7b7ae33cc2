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
in lock order (`ApkLockInfo`), `:lock` (the lock file) and `:keys`. With `locks = [...]` (a
lock-set, e.g. one lock per image of a monorepo) it has `:<lock stem>_<arch>` per lock, and a
package that several locks pin (same name, version and sha256) is one repository, downloaded and
expanded once for all of them.
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

def _stem(label):
    name = label.name.split("/")[-1]
    for suffix in (".lock.json", ".json"):
        if name.endswith(suffix):
            return name[:-len(suffix)]
    return name

def _read_lock(rctx, label):
    text = rctx.read(label)
    lock = json.decode(text)
    if lock.get("version") != "v1":
        fail("%s: not an apko lock v1" % label)
    for p in lock["contents"].get("packages", []):
        if not p.get("sha256"):
            fail("%s: %s-%s has no sha256; re-lock with `distroless image lock`" % (label, p["name"], p["version"]))
    return text, lock

def _apk_lock_repositories_impl(rctx):
    hub = rctx.attr.name
    rule = _label_str(_PRIVATE)
    if bool(rctx.attr.lock) == bool(rctx.attr.locks):
        fail("%s: give exactly one of lock or locks" % hub)

    # one repository per distinct package across every lock of the set: images whose locks share
    # a package share its download and its expansion action
    decls = {}
    keys = {}
    targets = []  # (target name, lock file in the hub, arch, [repo])
    for label in ([rctx.attr.lock] if rctx.attr.lock else rctx.attr.locks):
        text, lock = _read_lock(rctx, label)
        single = bool(rctx.attr.lock)
        lock_file = "lock.json" if single else _stem(label) + ".lock.json"
        rctx.file(lock_file, text)  # a copy, not a symlink: the repo stays self-contained
        contents = lock["contents"]
        by_arch = {}
        for p in contents.get("packages", []):
            repo = _repo_name(hub, p)
            seen = decls.get(repo)
            if seen and seen["sha256"] != p["sha256"]:
                fail("%s: %s-%s (%s) has sha256 %s here but %s in another lock of %s" % (
                    label, p["name"], p["version"], p["architecture"], p["sha256"], seen["sha256"], hub))
            decls[repo] = p
            by_arch.setdefault(p["architecture"], []).append(repo)
        for arch, repos in by_arch.items():
            targets.append((arch if single else _stem(label) + "_" + arch, lock_file, arch, repos))
        for k in contents.get("keyring", []):
            if k.get("content"):
                keys["keys/" + k["name"].split("/")[-1]] = k["content"]

    lines = [
        '"""Generated from %s: one repository per locked APK."""' % (rctx.attr.lock or ", ".join([str(l) for l in rctx.attr.locks])),
        'load("%s", "apk_archive")' % _label_str("//bazel:lock.bzl"),
        "",
        "def repositories(mirrors = []):",
    ]
    for repo in sorted(decls):
        p = decls[repo]
        lines.append("    apk_archive(name = %r, url = %r, sha256 = %r, package_name = %r, version = %r, arch = %r, checksum = %r, mirrors = mirrors + %r)" % (
            repo,
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
    for name, content in keys.items():
        rctx.file(name, content)

    build = [
        'load("%s", "apk_lock")' % rule,
        'package(default_visibility = ["//visibility:public"])',
        'exports_files(glob(["*.json"]) + ["repositories.bzl"])',
        "filegroup(name = \"keys\", srcs = %r)" % sorted(keys),
    ]
    if rctx.attr.lock:
        build.append('filegroup(name = "lock", srcs = ["lock.json"])')
    for name, lock_file, arch, repos in targets:
        build.append("apk_lock(name = %r, arch = %r, lock = %r, packages = %r)" % (
            name,
            arch,
            lock_file,
            ["@%s//:apk" % r for r in repos],
        ))
    rctx.file("BUILD.bazel", "\n".join(build) + "\n")

apk_lock_repositories = repository_rule(
    implementation = _apk_lock_repositories_impl,
    attrs = {
        "lock": attr.label(allow_single_file = True, doc = "one lock: targets `:<arch>`, `:lock`"),
        "locks": attr.label_list(allow_files = True, doc = "a lock-set: targets `:<lock stem>_<arch>` over shared package repositories"),
        "mirrors": attr.string_list(doc = "base URLs tried before each package URL"),
    },
    doc = "The hub of a lock file (or a set of them); call its repositories.bzl `repositories()` next.",
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
