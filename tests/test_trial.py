"""A search trial's process: Tune unpickles raykd.tuning.trial.run_trial in a fresh process for every trial."""

import json
import subprocess
import sys


def test_a_trial_process_imports_no_data_loading_and_no_command_module():
    """The trial imports what it runs (Tune, Ray Train, the plan, the worker loop), not data loading or result
    tables: when run_trial lived in raykd.search, every trial imported scikit-learn and scipy with it (1.4 s)."""
    code = ("import sys, pickle; from raykd.tuning.trial import run_trial; pickle.loads(pickle.dumps(run_trial));"
            "print([m for m in ('sklearn', 'raykd.data', 'raykd.search') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.strip().replace("'", '"')) == []
