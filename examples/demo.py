"""`make demo`: the main job on the embedded example, through the `distroless` CLI.

Creates a signing key, packs each tree listed in examples/packages.yaml into a signed .apk,
writes a signed APKINDEX.tar.gz, verifies all of it, builds the image of examples/image.yaml
from that repository and prints what it made. Output: out/demo/.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
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
    layout = OUT / "image"
    if layout.exists():
        shutil.rmtree(layout)
    layout.mkdir()
    run("image", "build", str(HERE / "image.yaml"), "distroless/demo:latest", str(layout),
        "--cache-dir", str(OUT / "cache"), "--sbom-path", str(OUT / "sbom"), "--offline")
    summary(layout, repo.parent, key)


def summary(layout: Path, repo: Path, key: Path) -> None:
    index = json.loads((layout / "index.json").read_text())
    print("\n== demo summary ==")
    print(f"repository: {repo} (signed with {key.name}, public key {key}.pub)")
    print(f"image: {layout} (OCI layout), index digest sha256:"
          + hashlib.sha256((layout / "index.json").read_bytes()).hexdigest())
    for m in index["manifests"]:
        manifest = json.loads((layout / "blobs" / "sha256" / m["digest"][7:]).read_text())
        size = sum(l["size"] for l in manifest["layers"]) + manifest["config"]["size"]
        print(f"  {m['platform']['architecture']}: {m['digest']}, {size} bytes compressed, {len(manifest['layers'])} layer(s)")
    sbom = json.loads((OUT / "sbom" / "sbom-x86_64.spdx.json").read_text())
    pkgs = [f"{p['name']}-{p['versionInfo']}" for p in sbom["packages"]
            if any(r["referenceLocator"].startswith("pkg:apk/") for r in p.get("externalRefs", []))]
    print(f"packages: {', '.join(pkgs)}")
    print(f"SBOM: {OUT / 'sbom' / 'sbom-x86_64.spdx.json'}")


if __name__ == "__main__":
    main()
