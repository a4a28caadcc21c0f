"""`python -m host.cli` is `anole`."""
import sys

from host.cli import main

sys.exit(main())
