"""Allow `python -m lagwatch`."""

import sys

from lagwatch.cli import main

sys.exit(main())
