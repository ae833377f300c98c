"""Delivering a batch of jobs: render, send, and write marks and outcomes."""
