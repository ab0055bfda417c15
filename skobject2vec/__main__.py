"""``python -m skobject2vec`` is the ``skobject2vec`` command (also under torchrun)."""

import sys

from .cli import main

sys.exit(main())
