"""Simulated pre-lease daemons (spec-kitty 3.2.x stand-ins) for the demo, tests and benchmarks.

The facts about the real ones are pure and live in `tenure.core.speckitty`.
"""
