"""The building blocks stand on the core alone: a second ecosystem needs no sibling plugin."""

from __future__ import annotations

import subprocess
import sys


class TestBuildingBlocks:
    def test_importing_them_loads_no_plugin(self) -> None:
        """Importing the rule table, the allocators, the HTTP client and the Prometheus
        source loads no module of ``chargeback.plugins`` (checked in a fresh process)."""
        code = (
            "import sys\n"
            "import chargeback.core.rules, chargeback.core.sources\n"
            "print(sorted(m for m in sys.modules if m.startswith('chargeback.plugins')))\n"
            "print('chargeback.core.sources.prometheus' in sys.modules)\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        plugins, loaded = done.stdout.splitlines()
        assert plugins == "[]"
        assert loaded == "True"  # the check really imported the blocks
