# The README's two commands: `make demo` and `make test`. Everything they need is installed here.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo demo-deps test test-remote peers peers-down frontend bench bench-monorepo clean

$(STAMP): pyproject.toml
	@$(PYTHON) -m venv --help >/dev/null 2>&1 && $(PYTHON) -c 'import ensurepip' 2>/dev/null \
		|| (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# What the demo runs besides Python: the build sandbox and a C toolchain with static libc.
DEMO_DEBS := bubblewrap slirp4netns gcc libc6-dev
demo-deps:
	@missing=$$(for p in $(DEMO_DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

demo: $(STAMP) demo-deps
	$(PY) examples/demo.py

# Real peers (registry, dockerd, cosign, ...) on loopback; idempotent.
peers:
	bash tests/peers/peers.sh up

peers-down:
	bash tests/peers/peers.sh down

# tests/remote needs BuildGrid (a ~10-minute first install): `make test-remote`, not here.
test: $(STAMP) peers
	$(PY) -m pytest -q --durations=15 --ignore=tests/remote

# The Bazel example through a real Remote Execution API service (BuildGrid + PostgreSQL + our
# bubblewrap workers on loopback). First run ~10 min of install, then about 2 min of tests.
test-remote: $(STAMP) peers
	bash tests/remote/install.sh
	$(PY) -m pytest -q tests/remote
	bash tests/remote/inputs.sh > tests/remote/verified.sha256

# The BuildKit frontend image, pushed to the loopback registry the peers script started.
FRONTEND_WORK ?= /var/cache/distroless-frontend
frontend: $(STAMP) peers
	. /var/cache/distroless-peers/state.env && \
		$(PY) frontend/build.py --work $(FRONTEND_WORK) --push $$REGISTRY_ADDR/distroless/frontend:dev

bench: $(STAMP)
	$(PY) bench/run.py

# examples/monorepo at scale with Bazel (~10 min): cold, no-op, one-package bump, warm disk cache.
bench-monorepo: $(STAMP)
	$(PY) bench/monorepo.py

clean:
	rm -rf $(VENV) out

# BuildKit gateway protos -> committed Python modules (tests/test_proto.py checks they are current).
PROTO_OUT := distroless/buildkit/_pb

.PHONY: proto
proto: $(STAMP)
	rm -rf $(PROTO_OUT)/github $(PROTO_OUT)/google
	$(PY) proto/generate.py $(PROTO_OUT)

# The Starlark copy of the architecture table (tests/test_basics.py checks it is current).
.PHONY: bazel/private/arch.bzl
bazel/private/arch.bzl: $(STAMP)
	$(PY) -c 'import pathlib, distroless.arch as a; pathlib.Path("$@").write_text(a.starlark())'
