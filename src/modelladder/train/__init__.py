"""Training: the one loop (fit), optimizers and schedules, checkpoints with bitwise resume."""
