"""What a run hands back: an experiment's tables and best student (results), its model card (card),
the serving exports with their checks and latency (deploy), and the paper's table (paper)."""
