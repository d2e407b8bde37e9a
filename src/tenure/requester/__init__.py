"""The requester side: start or reuse a holder (`ensure`, `start`), supersede, stop, `run`."""
