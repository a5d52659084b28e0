"""Ray Tune: the shared Tuner set-up (tuner), search-space files (spaces), the multi-seed confirmation
(confirm) and the teacher's recipe search (teacher_search)."""
