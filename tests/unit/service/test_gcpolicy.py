"""The process's collector policy: set by the CLI, frozen after start-up, never by embedding."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import textwrap

from chargeback.service import gcpolicy

_PROBE = textwrap.dedent(
    """
    import gc, json
    from chargeback.service import gcpolicy

    before = gc.get_threshold()
    embedded_freeze = gcpolicy.freeze_start_up()
    frozen_embedded = gc.get_freeze_count()
    gcpolicy.configure()
    after = gc.get_threshold()
    cycle = []
    cycle.append(cycle)
    del cycle
    froze = gcpolicy.freeze_start_up()
    print(json.dumps({
        "before": before, "embedded_freeze": embedded_freeze,
        "frozen_embedded": frozen_embedded, "after": after, "froze": froze,
        "frozen": gc.get_freeze_count(), "garbage_left": gc.collect(),
    }))
    """
)


def _probe() -> dict[str, object]:
    """Run the policy in a fresh interpreter (freezing this one would outlive the test)."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


class TestProcessPolicy:
    def test_configure_raises_the_young_threshold_and_enables_the_freeze(self) -> None:
        """Before configure() the policy touches nothing; after it the thresholds are
        THRESHOLDS and the start-up heap is frozen (the garbage collected first)."""
        result = _probe()
        assert result["before"] == [700, 10, 10]
        assert result["embedded_freeze"] is False
        assert result["frozen_embedded"] == 0
        assert result["after"] == list(gcpolicy.THRESHOLDS)
        assert result["froze"] is True
        assert isinstance(result["frozen"], int)
        assert result["frozen"] > 1000  # the modules, classes and functions loaded so far
        assert result["garbage_left"] == 0

    def test_an_embedded_daemon_leaves_this_process_alone(self) -> None:
        """This test process never called configure(): freeze_start_up() does nothing."""
        frozen = gc.get_freeze_count()
        assert gcpolicy.freeze_start_up() is False
        assert gc.get_freeze_count() == frozen

    def test_the_chargeback_program_configures_it_and_an_embedding_does_not(self) -> None:
        """``cli.main()`` (the program's own command line) sets the thresholds;
        ``cli.main([...])`` (embedded, as the tests call it) leaves them."""
        probe = textwrap.dedent(
            """
            import contextlib, gc, sys
            from chargeback import cli
            with contextlib.suppress(SystemExit):
                cli.main(["--help"])
            embedded = gc.get_threshold()
            sys.argv = ["chargeback", "--help"]
            with contextlib.suppress(SystemExit):
                cli.main()
            print(list(embedded), list(gc.get_threshold()), file=sys.stderr)
            """
        )
        done = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
        )
        embedded, program = done.stderr.strip().splitlines()[-1].split("] [")
        assert embedded == "[700, 10, 10"
        assert program == ", ".join(map(str, gcpolicy.THRESHOLDS)) + "]"
