"""Rebuild exactly what a bad version fed (docs/rebuild.md): plan from the lineage, then rerun
the engine runs that produced affected versions with the bad input pinned to a good one."""

from headwater.rebuild.execute import Launched, RebuildResult, run_plan
from headwater.rebuild.plan import CONF_KEY, PlanEntry, RebuildPlan, plan_rebuild

__all__ = ["CONF_KEY", "Launched", "PlanEntry", "RebuildPlan", "RebuildResult", "plan_rebuild",
           "run_plan"]
