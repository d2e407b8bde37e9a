"""tenure's reference daemon for the built-in families: a holder with a control plane."""
