"""What a replica keeps on disk and how it comes back after a crash (DESIGN section 6).

Owns the data dir: the superblock (superblock.py), the journal interface and its two backends
(journal.py, segmented.py, ring.py), the checkpoint store (snapshot.py), the data-dir layout,
format and open checks (datadir.py), and the working parts the journal and snapshot roles run
(journal_writer.py, snapshot_writer.py).

Never imports the VSR core (except recover.py, which builds the core's Recovered type, the one
hand-over), the domains or the shared-memory rings: it stores frames and opaque snapshot
sections and is wired to the rest of the replica through plain callables. The core never
imports storage.
"""
