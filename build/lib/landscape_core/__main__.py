import sys

from landscape_core.cli import main

sys.exit(main())
