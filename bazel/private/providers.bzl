"""Providers of the distroless rules. Outputs are also plain files (DefaultInfo), so rules_oci
and other rulesets can take an image's OCI layout directory as is."""

ApkInfo = provider(
    doc = "One .apk and its expansion (data.tar + meta.json, made once per package).",
    fields = {
        "apk": "File: the .apk",
        "package_name": "string",
        "version": "string",
        "arch": "string: apk spelling (x86_64, aarch64, ...)",
        "checksum": "string: Q1 control checksum ('' when unknown)",
        "sha256": "string: whole-file sha256 ('' when unknown)",
        "expanded": "File (directory): the expand step's output",
    },
)

ApkLockInfo = provider(
    doc = "One architecture's packages of a lock, in lock (= install) order.",
    fields = {
        "lock": "File: the lock",
        "arch": "string: apk spelling",
        "packages": "list of ApkInfo, in lock order",
    },
)

LayerInfo = provider(
    doc = "One compressed layer (an empty blob means an unused layer slot).",
    fields = {
        "blob": "File: compressed layer",
        "descriptor": "File: JSON {digest, size, diff_id, media_type} ({} for an unused slot)",
        "tar": "File: the uncompressed tar the blob was made from",
    },
)

DistrolessImageInfo = provider(
    doc = "An image (one arch) or index as an OCI layout directory.",
    fields = {
        "layout": "File (directory): OCI layout; index.json is the image index",
        "digest": "File: the index digest, 'sha256:<hex>\\n'",
        "metas": "list of File: the assemble step's metadata, one per arch",
        "layers": "list of LayerInfo (one-arch images only)",
        "sbom": "File (directory) or None: SBOM documents",
        "signed": "bool: the layout carries signatures",
    },
)

DistrolessToolInfo = provider(
    doc = "How to run `distroless.steps`: wrapper, interpreter, inputs and leading arguments.",
    fields = {
        "executable": "File: bazel/private/python.sh (runs its first argument with -I -B)",
        "python": "string: the interpreter (--@distroless//bazel:python; default python3 on PATH)",
        "common": "depset of File: bootstrap, ABI record, third-party modules",
        "steps": "dict: step name -> depset of File (the engine modules that step imports)",
        "args": "list of string: interpreter, bootstrap, ABI and sys.path entries (exec-root relative)",
        "run_args": "list of string: the same relative to a runfiles workspace directory",
        "run_executable": "string: the wrapper's runfiles path",
    },
)

EngineStepsInfo = provider(
    doc = "Per step of distroless.steps, the engine files it imports (generated: bazel/engine_files.py).",
    fields = {"steps": "dict: step name -> depset of File"},
)

PythonInfo = provider(
    doc = "The value of the //bazel:python flag.",
    fields = {"interpreter": "string"},
)
