"""Print the host toolchain's identity as the engine defines it (distroless/melange/hostid.py):
what the repository rule @distroless_host_toolchain records. Run as `python3 -I -B` from
anywhere; it finds the engine beside these rules."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from distroless.melange.hostid import host_identity  # noqa: E402 - after the path is set

sys.stdout.write(host_identity())
