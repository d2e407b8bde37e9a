"""Facts about daemons that predate the lease scheme."""
