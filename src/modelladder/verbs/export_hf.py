"""`ladder export --format hf` and `--format torch`."""
