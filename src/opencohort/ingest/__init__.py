"""Site submissions and other feeds: store raw, parse, validate, match identities, report."""

from opencohort.ingest._csv import MalformedFile
from opencohort.ingest.checks import (
    Check,
    CheckResult,
    SiteContext,
    checks_for,
    default_checks,
    evaluate,
    run_checks,
)
from opencohort.ingest.feeds import (
    FEED_TABLES,
    FEEDS,
    PROGRAM,
    FeedResult,
    FeedSource,
    find_feeds,
    ingest_feed,
    latest_feed,
    read_feed,
)
from opencohort.ingest.identity import (
    match_identities,
    participant_number,
    registry_identities,
    registry_participants,
    site_identities,
)
from opencohort.ingest.omop_files import TABLES, FieldSpec, ParsedTable, TableSpec, parse_table
from opencohort.ingest.raw_store import (
    StoredFile,
    Submission,
    latest_submission,
    store_submission,
    submissions,
)
from opencohort.ingest.report import FileResult, build_report, render_html, write_report
from opencohort.ingest.service import (
    IngestResult,
    ingest_dir,
    ingest_ehr_dir,
    ingest_site,
    read_submission,
    site_folders,
)

__all__ = [
    "FEEDS",
    "FEED_TABLES",
    "PROGRAM",
    "TABLES",
    "Check",
    "CheckResult",
    "FieldSpec",
    "FeedResult",
    "FeedSource",
    "FileResult",
    "IngestResult",
    "MalformedFile",
    "ParsedTable",
    "SiteContext",
    "StoredFile",
    "Submission",
    "TableSpec",
    "build_report",
    "checks_for",
    "default_checks",
    "evaluate",
    "find_feeds",
    "ingest_dir",
    "ingest_ehr_dir",
    "ingest_feed",
    "ingest_site",
    "latest_feed",
    "latest_submission",
    "match_identities",
    "parse_table",
    "read_feed",
    "participant_number",
    "read_submission",
    "registry_identities",
    "registry_participants",
    "render_html",
    "run_checks",
    "site_folders",
    "site_identities",
    "store_submission",
    "submissions",
    "write_report",
]
