"""Ray Tune: the shared Tuner set-up (tuner), a search trial (trial), search-space files (spaces), the
multi-seed confirmation (confirm) and the teacher's recipe search (teacher_search)."""
