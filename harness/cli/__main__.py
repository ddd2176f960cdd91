"""`python -m harness.cli`: the command line."""

from harness.cli import main

main()
