"""The demo: a real fleet of legacy stand-ins and tenure daemons, run and cleaned up."""
