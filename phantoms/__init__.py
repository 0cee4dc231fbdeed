"""Digital QA phantoms for igrt: planning sets and CBCTs at a known couch correction.

See :mod:`phantoms.generator` for the API and ``python -m phantoms --help`` for the CLI.
"""

from phantoms.generator import (
    CbctCase,
    PlanningCase,
    read_planning_case,
    write_cbct,
    write_planning_set,
)

__all__ = ["CbctCase", "PlanningCase", "read_planning_case", "write_cbct", "write_planning_set"]
