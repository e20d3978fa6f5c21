"""Shared helpers of the VSR scenario tests: find replicas by role in a running cluster."""


def primary_index(cluster):
    for index, node in enumerate(cluster.nodes):
        if node is not None and node.replica.status == "normal" and node.replica.is_primary:
            return index
    return None


def once(condition, action):
    """An event for every tick that runs `action(cluster)` the first tick `condition` holds."""
    fired = []

    def event(cluster):
        if not fired and condition(cluster):
            fired.append(cluster.now)
            action(cluster)
    event.fired = fired
    return event


def every_tick(event, first, last):
    return {tick: [event] for tick in range(first, last)}
