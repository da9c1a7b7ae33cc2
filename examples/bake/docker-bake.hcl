# The demo's packages and the image built from them in ONE `docker buildx bake` (one graph, one
# cache). Run from this directory, after `distroless keygen melange.rsa` here:
#   export FRONTEND=<registry>/distroless/frontend:<tag>
#   export TOOLCHAIN=<registry>/distroless/toolchain:<tag>   # `frontend/build.py --toolchain bash,gcc,libc6-dev,openssl`
#   docker buildx bake --load             # the image distroless/demo-bake, its packages built on the way
#   docker run --rm distroless/demo-bake  # Hello from distroless
# The recipes and the image YAML need no `# syntax=` line: BUILDKIT_SYNTAX names the frontend.
# `docker buildx bake packages` writes the repositories to out/ instead (see README "Packages with
# docker buildx"); `--build-context NAME=out/NAME` then builds the image from them.

variable "FRONTEND" {
  default = "127.0.0.1:5000/distroless/frontend:dev"
}

variable "TOOLCHAIN" {
  default = "127.0.0.1:5000/distroless/toolchain:dev"
}

variable "SOURCE_DATE_EPOCH" {
  default = "1700000000"
}

group "default" {
  targets = ["image"]
}

group "packages" {
  targets = ["baselayout", "certs", "hello"]
}

target "_distroless" {
  args = {
    BUILDKIT_SYNTAX   = FRONTEND
    SOURCE_DATE_EPOCH = SOURCE_DATE_EPOCH
  }
  # the signing key, as a secret: the recipes' pack and index steps sign with it. The image target
  # needs it too: bake evaluates a `target:` context inside the build that uses it.
  secret = ["id=signing-key,src=melange.rsa"]
}

# A melange recipe built as packages: the result is a repository (<arch>/*.apk, APKINDEX.tar.gz).
target "_recipe" {
  inherits = ["_distroless"]
  context  = "../recipes"
}

target "baselayout" {
  inherits   = ["_recipe"]
  dockerfile = "demo-baselayout.yaml"
  output     = ["type=local,dest=out/baselayout"]
}

target "certs" {
  inherits   = ["_recipe"]
  dockerfile = "ca-certificates-bundle.yaml"
  output     = ["type=local,dest=out/certs"]
}

# demo-hello compiles C: its steps run on the toolchain image (the CLI's --host-toolchain)
target "hello" {
  inherits   = ["_recipe"]
  dockerfile = "demo-hello.yaml"
  args       = { DISTROLESS_TOOLCHAIN = TOOLCHAIN }
  output     = ["type=local,dest=out/hello"]
}

# The image: its YAML's repositories `baselayout`, `certs` and `hello` are the other targets.
target "image" {
  inherits   = ["_distroless"]
  context    = "."
  dockerfile = "image.yaml"
  contexts = {
    baselayout = "target:baselayout"
    certs      = "target:certs"
    hello      = "target:hello"
  }
  tags = ["distroless/demo-bake:latest"]
}
