"""The APK v2 format: versions, dependency atoms, packages, indexes and keys."""
