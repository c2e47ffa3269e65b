"""Load a trained run and predict with it."""
