"""Operator tooling: the `lotse` CLI, the demo scenario and the programme report."""
