"""Ray Train: the loop every worker runs (worker), its job for one configuration (job), the TorchTrainer
set-up around it (driver), the per-epoch log (epochs), and what the loop uses: batches, length-grouped
sampling, precision; teacher fine-tuning (finetune); console progress."""
