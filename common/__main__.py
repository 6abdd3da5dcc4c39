"""`python -m common` runs the facegate command line."""

import sys

from common.cli import main

sys.exit(main())
