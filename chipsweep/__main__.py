"""`python -m chipsweep`: the command line."""

import sys

from chipsweep.service.cli import main

sys.exit(main())
