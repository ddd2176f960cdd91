"""`python -m harness.adapter`: run one team's model, as harness.adapter.entry describes.

The entry module runs as the main module itself: a process the team's code spawns (multiprocessing) then
imports it again before it unpickles anything, and so resolves the team's import names first. A package's
`__main__` would not do: spawn never re-imports a module of that name."""

import runpy

runpy.run_module("harness.adapter.entry", run_name="__main__", alter_sys=True)
