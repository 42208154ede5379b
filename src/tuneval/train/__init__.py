"""Fine-tuning: the training job's contract, batches, checkpoints, the launcher and the Trainer run."""
