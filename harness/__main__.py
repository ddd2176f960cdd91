"""`python -m harness`: the command line (the evaluator image's entry point)."""

from harness.cli import main

main()
