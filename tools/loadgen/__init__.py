"""The multiprocess load generator (`metavsr loadgen`) and its measuring parts.

command      the command line: arguments, cluster and credentials (ctl's policy), output
coordinator  starts P worker processes, the common start, merges ticks and final figures
worker       one process: C lockstep sessions over non-blocking sockets, retries, failover
workload     one session's catalogue and its deterministic next operation
mix          operation kinds, presets, the --mix parser
pacing       closed/open loop intended send times, the measurement window
metrics      per-worker recorder (HDR histograms, errors, ticks) and merged totals
histogram    the mergeable HDR histogram
history      the --history file (format in its docstring)
plot         the --plot PNG, without a plotting dependency
"""
