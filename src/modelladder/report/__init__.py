"""Reports: one self-contained HTML file with plots from a run or ladder folder."""

from modelladder.report.html import write_report

__all__ = ["write_report"]
