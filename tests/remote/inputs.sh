#!/usr/bin/env bash
# One digest over what remote execution depends on: the Bazel rules, the engine's steps and their
# generated file groups, the Bazel example and this harness (its own stamp excluded). `make
# test-remote` records it in tests/remote/verified.sha256 when it passes; .ci/run runs
# `make test-remote` whenever the digest differs from the recorded one, so every change to these
# files is proven through BuildGrid at least once.
set -euo pipefail
cd "$(dirname "$0")/../.."
git ls-files -z -- bazel distroless/steps.py distroless/packagesteps.py distroless/BUILD.bazel \
        examples/bazel tests/remote ':!tests/remote/verified.sha256' \
    | sort -z | xargs -0 git hash-object -- | sha256sum | cut -d' ' -f1
