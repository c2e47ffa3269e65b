"""Golden loss curves of every recipe (record.py writes them, tests/test_golden_curves.py checks them)."""
