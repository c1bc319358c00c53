"""`python -m flows.cli`: the same as `newsflow`."""

import sys

from flows.cli.entry import main

sys.exit(main())
