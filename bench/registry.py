"""The registry's benchmarks (issue 3): bulk load, then the API under 32 concurrent clients.

Runs ``registry_load.py`` (1,000,000 participants into SQLite within 10 minutes and PostgreSQL
within 15, peak memory at most 2 GB) and ``registry_api.py`` (300 requests/s with p99 under
50 ms and no errors; the highest rate held with p99 under 100 ms), each writing its own
``bench/results/registry_{load,api}.json``. Both need a PostgreSQL server: ``--pg-url`` or
``$OPENCOHORT_TEST_PG_URL`` (``scripts/postgres.sh`` starts one and prints its URL).

    python bench/registry.py [--pg-url URL]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-url", default=os.environ.get("OPENCOHORT_TEST_PG_URL", ""))
    args = parser.parse_args()
    if not args.pg_url:
        sys.exit("no PostgreSQL URL: pass --pg-url or set OPENCOHORT_TEST_PG_URL")
    for script in ("registry_load.py", "registry_api.py"):
        subprocess.run([sys.executable, str(HERE / script), "--pg-url", args.pg_url], check=True)


if __name__ == "__main__":
    main()
