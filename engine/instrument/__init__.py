"""Nominal instrument description: what a real pipeline at Palomar knows before it looks at data."""
