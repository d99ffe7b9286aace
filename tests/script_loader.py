"""Import a file of scripts/ as a module (scripts are not a package), for the tests that drive them.

`python scripts/NAME.py` puts scripts/ first on sys.path; the loader gives the tests the same path
(no script imports another: the shared harness is medseg_nas.bench).
"""

import importlib.util
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load_script(name: str):
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))
    spec = importlib.util.spec_from_file_location(f"_script_{name}", SCRIPTS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod
