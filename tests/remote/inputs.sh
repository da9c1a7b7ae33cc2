#!/usr/bin/env bash
# One digest over what remote execution depends on: the Bazel rules, the engine's steps and their
# generated file groups, the package builds (melange: the hermetic build nests its sandbox in a
# worker's), the Bazel example and its recipes, and this harness (its own stamp excluded). `make
# test-remote` records it in tests/remote/verified.sha256 when it passes; .ci/run runs
# `make test-remote` whenever the digest differs from the recorded one, so every change to these
# files is proven through BuildGrid at least once.
set -euo pipefail
cd "$(dirname "$0")/../.."
git ls-files -z -- bazel distroless/steps.py distroless/packagesteps.py distroless/publishsteps.py \
        distroless/BUILD.bazel distroless/melange examples/bazel examples/recipes tests/remote ':!tests/remote/verified.sha256' \
    | sort -z | xargs -0 git hash-object -- | sha256sum | cut -d' ' -f1
