"""Experiment drivers built on raykd, kept outside the library's core (as torchdistill keeps examples/ and
configs/ apart): they run raykd's commands and write results/, but `pip install .` ships only `raykd`
(pyproject's package discovery). Run them from the repository root: `python -m experiments.<name> --help`."""
