# The demo's packages, then an image from them, with `docker buildx bake` (run from this directory,
# after `distroless keygen melange.rsa` here):
#   export FRONTEND=<registry>/distroless/frontend:<tag>
#   docker buildx bake packages            # out/baselayout/x86_64/*.apk, out/certs/x86_64/*.apk
#   docker buildx bake image --load        # the image, its repositories the named contexts
# The recipes and the image YAML need no `# syntax=` line: BUILDKIT_SYNTAX names the frontend.
# (A `target:` context would make it one invocation, but dockerd 26.1's BuildKit panics on it; see
# README "Packages with docker buildx".)

variable "FRONTEND" {
  default = "127.0.0.1:5000/distroless/frontend:dev"
}

variable "SOURCE_DATE_EPOCH" {
  default = "1700000000"
}

group "default" {
  targets = ["packages"]
}

group "packages" {
  targets = ["baselayout", "certs"]
}

target "_distroless" {
  args = {
    BUILDKIT_SYNTAX   = FRONTEND
    SOURCE_DATE_EPOCH = SOURCE_DATE_EPOCH
  }
}

# A melange recipe built as packages: the result is a repository (<arch>/*.apk, APKINDEX.tar.gz),
# signed with the secret `signing-key`.
target "_recipe" {
  inherits = ["_distroless"]
  context  = "../recipes"
  secret   = ["id=signing-key,src=melange.rsa"]
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

# The image: its YAML's repositories `baselayout` and `certs` are these named contexts.
target "image" {
  inherits   = ["_distroless"]
  context    = "."
  dockerfile = "image.yaml"
  contexts = {
    baselayout = "out/baselayout"
    certs      = "out/certs"
  }
  tags = ["distroless/demo-bake:latest"]
}
