"""Evaluation: metrics for every task, and what each rung costs."""
