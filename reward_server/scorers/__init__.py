"""Scorers: each turns a batch of samples into a same-length list of results."""
