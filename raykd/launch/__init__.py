"""Turning a command line into a checked run: shared flags (cli), checks before any compute (checks),
the Ray cluster (cluster), and the data, cache and TeacherService shared by a run's trials (prepare)."""
