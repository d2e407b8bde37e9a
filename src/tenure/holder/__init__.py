"""The holder side of the protocol: take the lease, heartbeat, retire on your own.

`governor` drives one holder through the lifecycle table; `hold` is the adopter's surface on it.
"""
