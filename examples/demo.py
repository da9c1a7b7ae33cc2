"""`make demo`: the main job on the embedded example, offline, through the `distroless` CLI.

1. build the melange recipes in examples/recipes/ (a C program compiled in the bubblewrap sandbox,
   a CA bundle, a base layout) into signed APKs and a signed index;
2. verify every package and the index;
3. build the image of examples/image.yaml from that repository (OCI layout + SBOM);
4. sign the image with a freshly generated cosign key and verify the signature;
5. print a summary. Output: out/demo/.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

from distroless.cli import main as distroless

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "out" / "demo"
RECIPES = ["demo-baselayout", "ca-certificates-bundle", "demo-hello"]


def run(*args: str) -> None:
    print("$ distroless " + " ".join(shlex.quote(a) for a in args), flush=True)
    if distroless(list(args)) != 0:
        sys.exit(f"demo failed at: distroless {' '.join(args)}")


def main() -> None:
    start = time.monotonic()
    os.environ.setdefault("SOURCE_DATE_EPOCH", "1700000000")
    os.environ.setdefault("COSIGN_PASSWORD", "demo")  # the demo's throwaway cosign key
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    key = OUT / "demo.rsa"
    run("keygen", str(key), "--key-size", "2048")
    packages = OUT / "packages"
    for recipe in RECIPES:
        run("package", "build", "--host-toolchain", str(HERE / "recipes" / f"{recipe}.yaml"),
            "--source-dir", str(HERE / "recipes"), "--out-dir", str(packages), "--signing-key", str(key))
    apks = sorted(str(p) for p in (packages / "x86_64").glob("*.apk"))
    run("package", "verify", *apks, str(packages / "x86_64" / "APKINDEX.tar.gz"), "--keyring", f"{key}.pub")

    layout = OUT / "image"
    layout.mkdir()
    run("image", "build", str(HERE / "image.yaml"), "distroless/demo:latest", str(layout),
        "--cache-dir", str(OUT / "cache"), "--sbom-path", str(OUT / "sbom"), "--offline")

    os.chdir(OUT)
    run("generate-key-pair")
    run("sign", "--key", "cosign.key", "--layout", str(layout), "--identity", "distroless/demo:latest")
    run("verify", "--key", "cosign.pub", "--layout", str(layout))
    summary(layout, packages, key, time.monotonic() - start)


def summary(layout: Path, repo: Path, key: Path, seconds: float) -> None:
    sbom_path = OUT / "sbom" / "sbom-x86_64.spdx.json"
    sbom = json.loads(sbom_path.read_text())
    pkgs = [f"{p['name']}-{p['versionInfo']}" for p in sbom["packages"]
            if any(r["referenceLocator"].startswith("pkg:apk/") for r in p.get("externalRefs", []))]
    image_digest = sbom["packages"][0]["name"]
    manifest = json.loads((layout / "blobs" / "sha256" / image_digest.split(":")[1]).read_text())
    size = sum(l["size"] for l in manifest["layers"]) + manifest["config"]["size"]
    print("\n== demo summary ==")
    print(f"packages:   {repo / 'x86_64'} (signed with {key.name}; index verified)")
    print(f"image:      {layout} (OCI layout), {image_digest}, {size} bytes compressed, "
          f"{len(manifest['layers'])} layer(s)")
    print(f"installed:  {', '.join(pkgs)}")
    print(f"SBOM:       {sbom_path}")
    print(f"signature:  cosign signature by {OUT / 'cosign.pub'}, verified")
    print(f"took {seconds:.1f} s")


if __name__ == "__main__":
    main()
