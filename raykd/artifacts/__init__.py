"""What a run hands back: an experiment's tables and best student (results), its model card (card),
the serving exports with their checks and latency (deploy), and the tables of run records (tables).
The paper table's runner is an experiment driver outside the library: experiments/paper."""
