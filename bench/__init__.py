"""Benchmarks of chargeback (issue 7, DESIGN §12); run as ``python -m bench.<script>``."""
