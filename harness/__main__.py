"""`python -m harness`: the command line (the evaluator image's entry point)."""

from .cli import main

main()
