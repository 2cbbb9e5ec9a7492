import sys

from chipsweep.service.cli import main

sys.exit(main())
