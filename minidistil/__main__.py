"""``python -m minidistil ...``: the same as the ``minidistil`` command."""
import sys

from .cli import main

sys.exit(main())
