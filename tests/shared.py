"""Where the third-party fixtures live: `../shared/fixtures` beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DISTROLESS_SHARED", ROOT.parent / "shared"))
FIXTURES = SHARED / "fixtures"
APK = FIXTURES / "apk"
