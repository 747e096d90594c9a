"""Experiments built on the library (issue 9: downstream pretraining on selected data)."""
