"""What both sides of the protocol share: observing a record, and asking a holder to leave."""
