"""The FOCUS export (DESIGN §16): the ``focus`` emitter and ``chargeback export focus``."""

from chargeback.core.emitters.focus.emitter import FocusEmitter, make_focus_emitter
from chargeback.core.emitters.focus.export import ExportResult, FocusOptions

__all__ = ["ExportResult", "FocusEmitter", "FocusOptions", "make_focus_emitter"]
