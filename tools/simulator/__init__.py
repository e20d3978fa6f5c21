"""The deterministic simulator of a metavsr cluster (DESIGN section 10).

Runs the sans-IO VSR core (core/vsr) with a state machine under a seeded network, disk and
crash model, and checks safety (committed prefixes, digests, exactly-once, no acknowledged
write lost, linearizable client histories) and liveness once faults heal. Never imports
anything that does real I/O. Modules: cluster (event loop, action execution, checkers),
network, storage, faults, workload (clients), linearizability, kv (a toy state machine).

A workload bundles a state machine factory, a client class and a sequential model; switching
the simulated state machine is the one line DEFAULT_WORKLOAD below.
"""

WORKLOADS = {
    "streams": "tools.simulator.streams_workload:StreamsWorkload",  # domains.MuxStateMachine
    "kv": "tools.simulator.workload:KvWorkload",  # the toy key-value state machine
}
DEFAULT_WORKLOAD = "streams"


def load_workload(name: str = DEFAULT_WORKLOAD):
    import importlib

    module, _, attribute = WORKLOADS[name].partition(":")
    return getattr(importlib.import_module(module), attribute)
