"""`python -m agent.cli ...` is minormodectl."""

import sys

from agent.cli.main import main

sys.exit(main())
