"""`python -m tract.cli`: the command line."""

import sys

from tract.cli.main import main

sys.exit(main())
