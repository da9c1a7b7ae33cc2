"""Deterministic SBOMs (SPDX 2.3 as apko lays it out, and CycloneDX 1.5) from plain records."""
