"""Simulated populations with a known true skill, for measuring the SCI (issue 3)."""
