"""Shared memory between the processes of one replica: rings, doorbells, counters, naming.

The processes of a replica (DESIGN section 2) hand each other records through single-producer
single-consumer rings in POSIX shared memory (shm/ring.py), wake each other through one
doorbell per consuming process (shm/doorbell.py), and publish heartbeats and metrics as shared
counters (shm/counters.py). Every segment and semaphore is named from the cluster id, the
replica index and a part name (shm/naming.py), so the supervisor can remove what a crashed run
left behind before it creates new ones.
"""
