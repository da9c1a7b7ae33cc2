#!/bin/sh
# Every distroless action starts here: `python.sh PYTHON bootstrap.py ...`. PYTHON is the
# --@distroless//bazel:python flag (default `python3`, found on the action's fixed PATH), so no
# client path enters an action; isolated mode (-I) ignores PYTHON* variables and the user site,
# -B writes no bytecode into the (read-only) inputs.
py="$1"
shift
exec "$py" -I -B "$@"
