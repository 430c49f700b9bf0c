"""`python -m tract`: the command line, as the `tract` script runs it."""

import sys

from tract.cli.main import main

sys.exit(main())
