"""`python -m orchestrator.cli ...` runs `sweep ...`."""

from . import main

main()
