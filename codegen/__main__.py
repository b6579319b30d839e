"""``python -m codegen``: see codegen._cli."""

import sys

from codegen._cli import main

sys.exit(main())
