"""Fairness audit: group metrics (fairlearn MetricFrame) and ThresholdOptimizer mitigation for a trained run."""
