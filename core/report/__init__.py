"""Self-contained HTML reports: plain data from the services and the runs store (data.py) rendered into one
file that opens offline (render.py). No streamlit here, so the CLI and the app share it."""
from __future__ import annotations

from core.report.data import (ExplainedItem, ReportData, ReportError, ReportItem, ReportMedia, ReportQuery,
                              ReportSection, build_report, explained_from, items_from_result, latest_runs,
                              paired_against_fusion, query_from)
from core.report.render import RenderConfig, render_report, write_report

__all__ = ["ExplainedItem", "RenderConfig", "ReportData", "ReportError", "ReportItem", "ReportMedia", "ReportQuery",
           "ReportSection", "build_report", "explained_from", "items_from_result", "latest_runs",
           "paired_against_fusion", "query_from", "render_report", "write_report"]
