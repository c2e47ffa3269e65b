"""Datasets: load, split, fit preprocessing on the training split only."""
