"""`python -m harness.adapter`: run one team's model, as harness.adapter.entry describes."""

import sys

from harness.adapter.entry import main

if __name__ == "__main__":
    sys.exit(main())
