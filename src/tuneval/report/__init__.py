"""Reporting: the summary (table, chart, JSON), comparisons between experiments, the model card and the
publish folder."""
