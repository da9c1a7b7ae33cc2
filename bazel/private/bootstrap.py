"""Start `distroless.steps` under `python -I -B`: isolated mode ignores PYTHONPATH and the
script's directory, so the engine and its dependencies are put on sys.path from arguments
(paths relative to the action's working directory, never absolute in any output).

First it checks that this interpreter can load the compiled modules @distroless_python took
from the client (`--abi FILE`: "VERSION EXT_SUFFIX"), so a worker with another Python fails
with one clear line instead of an ImportError deep in a step. Keep this file to syntax every
Python 3 parses: the check must run on the wrong interpreter too.
"""

import os
import sys
import sysconfig


def check_abi(path):
    with open(path) as f:
        want_version, want_suffix = f.read().split()
    have_version = "%d.%d" % sys.version_info[:2]
    have_suffix = sysconfig.get_config_var("EXT_SUFFIX") or ""
    if (have_version, have_suffix) != (want_version, want_suffix):
        sys.stderr.write(
            "distroless: this action's interpreter %s is Python %s (%s), but @distroless_python's "
            "compiled modules are for Python %s (%s): choose a matching interpreter with "
            "--@distroless//bazel:python=NAME_OR_PATH, or re-fetch the modules from one "
            "(DISTROLESS_PYTHON=... bazel sync)\n"
            % (sys.executable, have_version, have_suffix, want_version, want_suffix))
        sys.exit(2)


def main():
    args = sys.argv[1:]
    paths = []
    while args and args[0] in ("--path", "--abi"):
        if args[0] == "--abi":
            check_abi(args[1])
        else:
            paths.append(os.path.abspath(args[1]))
        args = args[2:]
    if args and args[0] == "--":
        args = args[1:]
    sys.path[:0] = paths
    from distroless.steps import main as steps_main

    return steps_main(args)


if __name__ == "__main__":
    sys.exit(main())
