"""``python -m ccloud_sim`` runs the ``ccloud-sim`` CLI."""

import sys

from ccloud_sim.cli import main

sys.exit(main())
