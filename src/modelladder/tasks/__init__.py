"""Tasks: the objective a model is trained for (loss, scores, decoded predictions, metrics)."""
