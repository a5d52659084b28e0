"""The sections of `python -m raykd.bench`, one concept a module; each section is a function
`(args, cache_dir, scratch) -> list[str]` of markdown lines that raykd.bench runs and writes into the report.

common      what every section shares: the teacher of a task, its tokenized data, a real `raykd.distill` run
cache       the teacher-output cache: its build and warm read per task, its size against data size
epochs      seconds per epoch of real distillation runs: the floor, cache against live teacher, precision
peer        the peer: one epoch of TextBrewer's GeneralDistiller against raykd on the same work
throughput  trials per hour of one search in each layout of the cores, and the per-trial overhead
memory      the memory teacher outputs add with concurrent trials (TrialProbe actors, PSS)
serving     inference latency, the serving formats (ONNX, int8) and each student shape's serving cost
"""
