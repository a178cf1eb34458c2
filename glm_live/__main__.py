"""``python -m glm_live``: the same as the ``glm-live`` command."""

import sys

from .cli import main

sys.exit(main())
