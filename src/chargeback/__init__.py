"""chargeback: split a cloud bill exactly among the identities that caused it."""

from chargeback.core.money import split
from chargeback.errors import ChargebackError

__all__ = ["ChargebackError", "__version__", "split"]

__version__ = "0.1.0"
