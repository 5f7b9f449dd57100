"""``python -m mkdbook.cli``: the same as the ``mkdbook`` command."""

import sys

from mkdbook.cli import main

sys.exit(main())
