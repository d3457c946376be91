"""``flowweaver.display``: the dashboards, where AntFlow 0.10 keeps them (``antflow.display``).

Every name here is also importable from ``flowweaver`` itself.
"""

from ._dashboard_base import BaseDashboard, ProgressDisplay
from ._dashboards import CompactDashboard, DetailedDashboard, FullDashboard

__all__ = [
    "BaseDashboard",
    "CompactDashboard",
    "DetailedDashboard",
    "FullDashboard",
    "ProgressDisplay",
]
