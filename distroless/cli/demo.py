"""The demo: the main job on the embedded example, offline, through the `distroless` CLI.

1. build the melange recipes in `examples/recipes/` (a C program compiled in the bubblewrap
   sandbox, a CA bundle, a base layout) into signed APKs and a signed index;
2. verify every package and the index;
3. build the image of `examples/image.yaml` from that repository (OCI layout + SBOM);
4. sign the image with a freshly generated cosign key and verify the signature;
5. print a summary. Output: `<workdir>/out/demo/`.

`make demo` runs it on the checkout's examples; `distroless demo` on the copy the wheel ships.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import time
from pathlib import Path

from distroless import epoch
from distroless.errors import DistrolessError

RECIPES = ["demo-baselayout", "ca-certificates-bundle", "demo-hello"]


def _run(*args: str) -> None:
    from distroless.cli import main as distroless

    print("$ distroless " + " ".join(shlex.quote(a) for a in args), flush=True)
    if distroless(list(args)) != 0:
        raise DistrolessError(f"demo failed at: distroless {' '.join(args)}")


def run_demo(examples: Path, workdir: Path) -> Path:
    """Run the demo on `examples` (recipes/, image.yaml); image.yaml's paths are relative to
    `workdir`, which receives `out/demo/`. Returns the output directory."""
    start = time.monotonic()
    os.environ.setdefault(epoch.NAME, "1700000000")
    os.environ.setdefault("COSIGN_PASSWORD", "demo")  # the demo's throwaway cosign key
    out = workdir / "out" / "demo"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        key = out / "demo.rsa"
        _run("keygen", str(key), "--key-size", "2048")
        packages = out / "packages"
        for recipe in RECIPES:
            _run("package", "build", "--host-toolchain", str(examples / "recipes" / f"{recipe}.yaml"),
                 "--source-dir", str(examples / "recipes"), "--out-dir", str(packages), "--signing-key", str(key))
        apks = sorted(str(p) for p in (packages / "x86_64").glob("*.apk"))
        _run("package", "verify", *apks, str(packages / "x86_64" / "APKINDEX.tar.gz"), "--keyring", f"{key}.pub")

        layout = out / "image"
        layout.mkdir()
        _run("image", "build", str(examples / "image.yaml"), "distroless/demo:latest", str(layout),
             "--cache-dir", str(out / "cache"), "--sbom-path", str(out / "sbom"), "--offline")

        os.chdir(out)
        _run("generate-key-pair")
        _run("sign", "--key", "cosign.key", "--layout", str(layout), "--identity", "distroless/demo:latest")
        _run("verify", "--key", "cosign.pub", "--layout", str(layout))
        summary(out, layout, packages, key, time.monotonic() - start)
    finally:
        os.chdir(cwd)
    return out


def summary(out: Path, layout: Path, repo: Path, key: Path, seconds: float) -> None:
    sbom_path = out / "sbom" / "sbom-x86_64.spdx.json"
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
    print(f"signature:  cosign signature by {out / 'cosign.pub'}, verified")
    print(f"took {seconds:.1f} s")
