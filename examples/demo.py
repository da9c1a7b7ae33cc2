"""`make demo`: the main job on the embedded example, through the `distroless` CLI.

Creates a signing key, packs each tree listed in examples/packages.yaml into a signed .apk,
writes a signed APKINDEX.tar.gz, verifies all of it and prints what it made. Output: out/demo/.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import yaml

from distroless.cli import main as distroless

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "out" / "demo"


def run(*args: str) -> None:
    print("$ distroless " + " ".join(shlex.quote(a) for a in args), flush=True)
    if distroless(list(args)) != 0:
        sys.exit(f"demo failed at: distroless {' '.join(args)}")


def main() -> None:
    os.environ.setdefault("SOURCE_DATE_EPOCH", "1700000000")
    arch = "x86_64"
    repo = OUT / "repo" / arch
    repo.mkdir(parents=True, exist_ok=True)
    key = OUT / "demo.rsa"
    if not key.exists():
        run("keygen", str(key), "--key-size", "2048")
    spec = yaml.safe_load((HERE / "packages.yaml").read_text())
    apks = []
    for p in spec["packages"]:
        apk = repo / f"{p['name']}-{p['version']}.apk"
        args = ["package", "create", str(HERE / p["dir"]), "--name", p["name"], "--version", p["version"],
                "--arch", arch, "--description", p.get("description", ""), "--license", p.get("license", ""),
                "--signing-key", str(key), "-o", str(apk)]
        for flag in ("depends", "provides"):
            if p.get(flag):
                args += [f"--{flag}", *p[flag]]
        run(*args)
        apks.append(str(apk))
    index = repo / "APKINDEX.tar.gz"
    run("package", "index", *apks, "-o", str(index), "--arch", arch, "--signing-key", str(key))
    run("package", "verify", *apks, str(index), "--keyring", f"{key}.pub")
    for apk in apks:
        run("package", "info", apk)
    print(f"\ndemo repository: {repo.parent} (key {key}.pub)")


if __name__ == "__main__":
    main()
