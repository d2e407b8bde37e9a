"""Drivers: the lease holder, the reference daemons, the launcher, the cleanup use-case.

They feed facts from the adapters to the core and perform the actions it returns.
"""
