"""Adapters: I/O only. Files of the daemon root, process facts, loopback HTTP, port scans, signals.

They gather facts and carry out verdicts; they decide nothing.
"""
