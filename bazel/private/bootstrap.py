"""Start `distroless.steps` under `python3 -I -B`: isolated mode ignores PYTHONPATH and the
script's directory, so the engine and its dependencies are put on sys.path from arguments
(paths relative to the action's working directory, never absolute in any output)."""

import os
import sys


def main() -> int:
    args = sys.argv[1:]
    paths = []
    while args and args[0] == "--path":
        paths.append(os.path.abspath(args[1]))
        args = args[2:]
    if args and args[0] == "--":
        args = args[1:]
    sys.path[:0] = paths
    from distroless.steps import main as steps_main

    return steps_main(args)


if __name__ == "__main__":
    sys.exit(main())
