"""``python -m opencohort``: the same command line as ``opencohort``."""

from opencohort.cli import main

main()
