"""``python -m marketdata_assets.cli ...`` is the ``marketdata`` command."""

import sys

from marketdata_assets.cli.main import main

sys.exit(main())
