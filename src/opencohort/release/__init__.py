"""Releases: building, verifying and reading immutable, versioned, tiered releases."""

from opencohort.release.build import build_release, sandbox_dir
from opencohort.release.privacy import scan_frames
from opencohort.release.read import Release, list_releases, read_release

__all__ = [
    "Release",
    "build_release",
    "list_releases",
    "read_release",
    "sandbox_dir",
    "scan_frames",
]
