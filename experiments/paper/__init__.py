"""The paper's table (Aguilar et al., AAAI 2020, Table 2) and the low-data study, filled cell by cell:

    python -m experiments.paper --data-dir ../shared/data/glue --tasks rte mrpc cola sst2 stsb --seeds 3

A cell is one raykd command, run in a subprocess; its command line and its folder under
`results/paper/<task>/` are its record. A finished cell is never run again, an interrupted one is
resumed, and the table is rebuilt from the folders every time, so it fills over several runs of the
command; `--plan` prints what is done and what remains without running anything.

Per task:
- `teacher`: the teacher's recipe searched (`raykd.teacher --space search_spaces/teacher.py`), unless a
  fine-tuned teacher is given for the task (`--teacher TASK=FOLDER`, a folder written by raykd.teacher).
  Its weights stay in the cache, never in results/; on a machine without them, the teacher is
  fine-tuned again from its record (the recipe and seed of the search's best trial, or of the given
  teacher's run) before its task's next student cell.
- `finetune`, `kd`, `all`, `pid`, `sid`: `raykd.search` over `search_spaces/fixed/<method>.py` (the
  paper's settings, only the learning rate searched, the same number of trials for every method, so
  the baselines are tuned as much as the methods), its best configuration confirmed with `--seeds`
  seeds (`--confirm-top 1`): mean +- std on GLUE dev, selected on a split held out from training.
- `search`: `raykd.search --space search_spaces/internal.py` (algorithm, weights, temperature, layer
  map searched), its top 3 confirmed with `--seeds` seeds each.
- with `--fractions`: kd, sid and the search again on that share of the training set (the low-data study).
- `teacher-seed+K` (K = 1 .. seeds - 1), last: the teacher's recipe fine-tuned again with its seed + K, so
  that the teacher column is a mean +- std over `--seeds` seeds like every other cell. Only their records
  are kept; the students distill from the teacher itself (its own seed).

Modules: `cells` (what each cell runs, the given teachers), `runner` (running them, cells.jsonl),
`numbers` (a finished cell's numbers from its records), `tables` (the markdown tables), `plots`, `readme`
(README.md, every sentence from the records), `__main__` (the command).
"""
