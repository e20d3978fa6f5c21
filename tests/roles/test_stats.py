"""get_stats figures: counts from the state machine, process figures from /proc, permission."""

from __future__ import annotations

import os

from core import auth
from core.roles import stats
from domains.mux import MuxStateMachine
from net import iggy, wire
from net.iggy import Operation


def test_collect_counts_the_catalogue_and_reads_this_process_tree(tmp_path):
    mux = MuxStateMachine(auth.hash_secret("pw", n_log2=10))
    figures = stats.collect(mux, str(tmp_path), root_pid=os.getpid())
    assert figures.process_id == os.getpid()
    assert (figures.streams, figures.topics, figures.partitions, figures.consumer_groups,
            figures.clients) == (0, 0, 0, 0, 0)
    assert (figures.messages, figures.segments, figures.messages_size_bytes) == (0, 0, 0)
    assert figures.memory_usage > 0 and figures.threads >= 1
    assert 0 < figures.available_memory <= figures.total_memory
    assert 0 < figures.free_disk <= figures.total_disk
    assert figures.run_time_us > 0 and figures.start_time_us > 0
    assert figures.server_version == iggy.SERVER_VERSION and figures.os_name == "Linux"
    # The body encodes and decodes to the same figures.
    assert iggy.parse_stats(iggy.stats_body(figures)).streams == 0


def test_answer_refuses_a_user_without_read_servers(tmp_path):
    mux = MuxStateMachine(auth.hash_secret("pw", n_log2=10))
    header = wire.decode_header(iggy.request_frame(
        os.urandom(16), 1, 1, Operation.NON_REPLICATED, b"", code=iggy.Code.GET_STATS))
    root = iggy.parse_reply(stats.answer(header, mux, 0, str(tmp_path), 0),
                            Operation.NON_REPLICATED)
    assert root.status == 0 and iggy.parse_stats(root.payload).clients == 0
    # A user the state does not know (or without read_servers) gets 41 Unauthorized; the
    # conformance suite checks a real user without the right through the SDK.
    unknown = iggy.parse_reply(stats.answer(header, mux, 7, str(tmp_path), 0),
                               Operation.NON_REPLICATED)
    assert unknown.status == 41 and unknown.payload == b""
