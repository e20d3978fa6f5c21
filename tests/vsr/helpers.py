"""Shared helpers of the VSR scenario tests: find replicas by role in a running cluster."""


def primary_index(cluster):
    """The replica that is primary in the highest normal view (a cut-off old primary may
    still believe it leads a lower view)."""
    best = None
    for index, node in enumerate(cluster.nodes):
        if node is not None and node.replica.status == "normal" and node.replica.is_primary:
            if best is None or node.replica.view > cluster.nodes[best].replica.view:
                best = index
    return best


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
