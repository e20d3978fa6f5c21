"""The sans-IO Viewstamped Replication core: `Replica.step(input) -> actions`.

No I/O, clocks, randomness or processes here (DESIGN section 3); see messages.py for inputs,
actions and the caller's contract, replica.py for the protocol.
"""
