"""The nemesis schedule is a function of the seed and stays inside the run."""

from tools.chaos import nemesis


def test_a_seed_names_one_schedule_of_the_requested_faults_healed_before_the_end():
    first = nemesis.schedule(6, 300, ("kill", "partition"), 3, 1, 15)
    assert first == nemesis.schedule(6, 300, ("kill", "partition"), 3, 1, 15)
    assert first != nemesis.schedule(7, 300, ("kill", "partition"), 3, 1, 15)
    assert {f.kind for f in first} == {"kill", "partition"}
    previous_end = 0.0
    for fault in first:
        assert fault.at_s >= max(previous_end, nemesis.START_QUIET_S)  # one fault at a time
        previous_end = fault.at_s + fault.hold_s
        assert previous_end <= 300 - 15
        if fault.variant in ("link", "one-way"):
            assert fault.other not in (-1, fault.target)


def test_disk_full_always_targets_the_tmpfs_replica():
    faults = nemesis.schedule(3, 600, ("disk-full",), 3, 2, 15)
    assert faults and all(f.target == 2 for f in faults)
