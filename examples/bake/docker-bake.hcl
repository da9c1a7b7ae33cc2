# Packages and the image built from them in one `docker buildx bake` (one graph, one cache).
# Run from this directory, after `distroless keygen melange.rsa` here:
#   FRONTEND=<registry>/distroless/frontend:<tag> docker buildx bake --load
# The recipes and the image YAML need no `# syntax=` line: BUILDKIT_SYNTAX names the frontend.

variable "FRONTEND" {
  default = "127.0.0.1:5000/distroless/frontend:dev"
}

variable "SOURCE_DATE_EPOCH" {
  default = "1700000000"
}

group "default" {
  targets = ["image"]
}

# What every target shares: the frontend, the epoch, and the signing key as a secret. The image
# target needs the secret too: bake solves the recipes' graphs inside the image's build session.
target "_distroless" {
  args = {
    BUILDKIT_SYNTAX   = FRONTEND
    SOURCE_DATE_EPOCH = SOURCE_DATE_EPOCH
  }
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
}

target "certs" {
  inherits   = ["_recipe"]
  dockerfile = "ca-certificates-bundle.yaml"
}

# The image: its YAML's repositories `baselayout` and `certs` are these named contexts.
target "image" {
  inherits   = ["_distroless"]
  context    = "."
  dockerfile = "image.yaml"
  contexts = {
    baselayout = "target:baselayout"
    certs      = "target:certs"
  }
  tags = ["distroless/demo-bake:latest"]
}
