"""Public API of the distroless Bazel rules (WORKSPACE mode; Bazel 4.2.3 and later).

    load("@distroless//bazel:defs.bzl", "distroless_image", ...)

Every action runs the engine's own Python code (`distroless.steps`); see bazel/README.md.
"""

load(
    "//bazel/private:apk.bzl",
    _apk_import = "apk_import",
    _apk_index = "apk_index",
    _apk_package = "apk_package",
    _melange_lock = "melange_lock",
    _melange_package = "melange_package",
)
load(
    "//bazel/private:image.bzl",
    _distroless_image = "distroless_image",
    _distroless_image_index = "distroless_image_index",
    _distroless_load = "distroless_load",
    _distroless_lock = "distroless_lock",
    _distroless_push = "distroless_push",
    _distroless_sign = "distroless_sign",
    _distroless_verify_test = "distroless_verify_test",
)
load(
    "//bazel/private:providers.bzl",
    _ApkInfo = "ApkInfo",
    _ApkLockInfo = "ApkLockInfo",
    _DistrolessImageInfo = "DistrolessImageInfo",
    _LayerInfo = "LayerInfo",
)

ApkInfo = _ApkInfo
ApkLockInfo = _ApkLockInfo
DistrolessImageInfo = _DistrolessImageInfo
LayerInfo = _LayerInfo

apk_import = _apk_import
apk_package = _apk_package
apk_index = _apk_index
melange_package = _melange_package
melange_lock = _melange_lock
distroless_image = _distroless_image
distroless_image_index = _distroless_image_index
distroless_sign = _distroless_sign
distroless_verify_test = _distroless_verify_test
distroless_push = _distroless_push
distroless_load = _distroless_load
distroless_lock = _distroless_lock
