"""Releases: building, verifying and reading immutable, versioned, tiered releases."""

from opencohort.release.build import Retraction, build_release, sandbox_dir
from opencohort.release.diff import diff_releases
from opencohort.release.privacy import scan_frames
from opencohort.release.read import Release, list_releases, read_release
from opencohort.release.retract import retract

__all__ = [
    "Release",
    "Retraction",
    "build_release",
    "diff_releases",
    "list_releases",
    "read_release",
    "retract",
    "sandbox_dir",
    "scan_frames",
]
