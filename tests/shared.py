"""Where the third-party fixtures live: `tests/fixtures`, vendored with their provenance and licences."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
APK = FIXTURES / "apk"
