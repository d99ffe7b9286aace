"""docs/RELIABILITY.md's table as a library: every bad input we tried, run through the real CLI,
and what the user sees. `scripts/reliability_table.py` is its command line; the tests
(tests/test_reliability_table.py, tests/test_reliability_round2.py) use it directly.

Add a case by appending a function decorated with `@case(group, "the bad input in words")` to
the cases_*.py module of its group; it builds its files in the folder it is given and returns
the argv after `medseg-nas` (a generator yields it when something must stay alive meanwhile).
Cases must stop at their error (no training). The modules are imported here in table order, so
each group's cases stay contiguous.
"""

from medseg_nas.testing.reliability import builders  # noqa: F401
# importing a cases module registers its cases: this order is the table's
from medseg_nas.testing.reliability import cases_config  # noqa: F401, I001
from medseg_nas.testing.reliability import cases_data  # noqa: F401, I001
from medseg_nas.testing.reliability import cases_rundir  # noqa: F401, I001
from medseg_nas.testing.reliability import cases_model  # noqa: F401, I001
from medseg_nas.testing.reliability.harness import (  # noqa: F401
    BEGIN, CASES, DOC, END, Case, Outcome, case, generate, run_case, run_in_process, run_subprocess, splice, table,
    _normalise)
