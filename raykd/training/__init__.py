"""Ray Train: the loop every worker runs (worker), the TorchTrainer set-up around it (driver), and
what the loop uses: batches, length-grouped sampling, precision; teacher fine-tuning (finetune); console progress."""
