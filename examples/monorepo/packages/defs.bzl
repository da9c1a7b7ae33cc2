"""The monorepo's package set: a shared base, three "languages" (runtime + stdlib) and four apps
per language. bench/monorepo.py bumps one entry here to measure a one-package change."""

BASE = {
    # name: (version, size in bytes, depends)
    "mono-baselayout": ("1.0.0-r0", 4096, []),
    "mono-libc": ("2.40-r0", 393216, ["mono-baselayout"]),
    "mono-ssl": ("3.3.0-r0", 196608, ["mono-libc"]),
    "mono-tzdata": ("2024a-r0", 131072, []),
    "mono-ca-certs": ("1.0.0-r0", 16384, []),
}

LANGUAGES = ["java", "python", "node"]

def language_packages():
    out = {}
    for lang in LANGUAGES:
        out["mono-%s-stdlib" % lang] = ("1.0.0-r0", 262144, ["mono-libc"])
        out["mono-%s-runtime" % lang] = ("1.0.0-r0", 393216, ["mono-libc", "mono-ssl", "mono-%s-stdlib" % lang])
    return out

APPS = ["%s-app%d" % (lang, i) for lang in LANGUAGES for i in range(1, 5)]

def app_packages():
    out = {}
    for app in APPS:
        lang = app.split("-")[0]
        out["mono-" + app] = ("1.0.0-r0", 49152, ["mono-%s-runtime" % lang])
    return out

def all_packages():
    out = dict(BASE)
    out.update(language_packages())
    out.update(app_packages())
    return out
