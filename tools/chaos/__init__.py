"""`metavsr chaos`: a local cluster under load while a seeded nemesis kills, pauses,
partitions and fills the disk of replicas; then heal, converge and check (docs/CHAOS.md).

Modules: netns (one network namespace per replica), proxy (the fault-injecting TCP proxy every
client and peer connection goes through), nemesis (the seeded fault schedule), cluster (the
replica processes, their faults and their data dirs), verify (offline digests and acknowledged
writes), command (the command line and the run).
"""
