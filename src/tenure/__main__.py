"""`python -m tenure` runs the CLI."""

from tenure.cli import main

main()
