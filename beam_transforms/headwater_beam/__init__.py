"""Apache Beam transforms for Headwater: read and write versions, run the reference steps.

Why a separate package: the core (``headwater``) never imports Beam; this adapter turns Beam's
world (pipeline options, bundles, workers that share nothing with the launcher) into core calls,
and holds no catalog or storage logic of its own. Everything a worker needs travels as a frozen,
picklable :class:`headwater.Settings`; the catalog is written only in ``WriteVersion``'s single
finalize step. See ``docs/beam.md``.

Public API::

    from headwater_beam import (HeadwaterPipeline, HeadwaterOptions, ReadVersion, WriteVersion,
                                Despam, IdMerge, Clean, Split, DeadLetters,
                                OUTPUT, DEAD_LETTER, SPAM, MAPPING, rerun, BeamRelaunch)
"""

from headwater_beam.components import ConnectedComponents
from headwater_beam.context import HeadwaterPipeline, PipelineReport
from headwater_beam.dead_letters import DEAD_LETTER_SCHEMA, DeadLetters, dead_letter_row
from headwater_beam.id_merge import MAPPING, IdMerge
from headwater_beam.metrics import query_counters, query_lineage
from headwater_beam.options import HeadwaterOptions, settings_from_options
from headwater_beam.read import ReadVersion
from headwater_beam.rerun import BeamRelaunch, rerun
from headwater_beam.steps import DEAD_LETTER, OUTPUT, SPAM, Clean, Despam, Split
from headwater_beam.write import WriteVersion

__all__ = [
    "DEAD_LETTER",
    "DEAD_LETTER_SCHEMA",
    "MAPPING",
    "OUTPUT",
    "SPAM",
    "BeamRelaunch",
    "Clean",
    "ConnectedComponents",
    "DeadLetters",
    "Despam",
    "HeadwaterOptions",
    "HeadwaterPipeline",
    "IdMerge",
    "PipelineReport",
    "ReadVersion",
    "Split",
    "WriteVersion",
    "dead_letter_row",
    "query_counters",
    "query_lineage",
    "rerun",
    "settings_from_options",
]
