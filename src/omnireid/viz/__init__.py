"""Pictures and reports: ranked lists of the worst queries, an HTML page per evaluation."""

from omnireid.viz.ranked import RankedListPicture, draw_ranked_list, save_ranked_lists
from omnireid.viz.report import ReportSection, write_report

__all__ = [
    "RankedListPicture",
    "ReportSection",
    "draw_ranked_list",
    "save_ranked_lists",
    "write_report",
]
