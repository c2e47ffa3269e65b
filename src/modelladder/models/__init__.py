"""One architecture per file, each a plain nn.Module (or a wrapped scikit-learn rung) with its config above it."""
