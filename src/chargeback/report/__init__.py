"""Showback reports (DESIGN §17): a tenant's month per team, as one HTML file or CSV.

::

    chargeback report --tenant T --month YYYY-MM [--team X] --format html|csv [--out F]

- :mod:`.model`: the month's exact sums per team (by product type, identity and day)
  and the changes against last month; pure.
- :mod:`.read`: those figures, budgets and forecasts, read from committed data.
- :mod:`.view`: what a report says (tables folded to their largest lines, the chart,
  what is incomplete), shared by both renderers.
- :mod:`.render`: the self-contained HTML (inline SVG chart, no script) and the CSV.

The command's wiring is :mod:`chargeback.report_cli`.
"""

from chargeback.report.model import (
    Change,
    MonthFigures,
    ReportRow,
    TeamMonth,
    month_figures,
    top_changes,
)
from chargeback.report.read import ShowbackReport, TeamBudget, previous_month, read_report
from chargeback.report.render import CSV_HEADER, csv_rows, render_csv, render_html
from chargeback.report.view import ReportView, TeamView, build_view

__all__ = [
    "CSV_HEADER",
    "Change",
    "MonthFigures",
    "ReportRow",
    "ReportView",
    "ShowbackReport",
    "TeamBudget",
    "TeamMonth",
    "TeamView",
    "build_view",
    "csv_rows",
    "month_figures",
    "previous_month",
    "read_report",
    "render_csv",
    "render_html",
    "top_changes",
]
