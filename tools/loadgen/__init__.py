"""The multiprocess load generator (`metavsr loadgen`) and its measuring parts."""
