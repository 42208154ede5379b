"""Scoring: the evaluation engine, the metrics (one implementation each) and the bootstrap."""
