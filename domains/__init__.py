"""domains: the MuxStateMachine and the metadata catalogue it keeps (DESIGN section 7).

Owns all metadata state: sessions (the client table), streams (streams, topics, partitions,
consumer groups and members), users (users, permissions, personal access tokens), the Iggy
binary encodings of these domains' own request and result bodies, and the error catalogue.
Must never do I/O, read a clock, draw randomness, hash a secret or import net/ or core.vsr:
apply is a pure, deterministic function of (state, op, timestamp, client, session, request,
acting user id, operation, body).

Interface (domains.mux.MuxStateMachine):

  MuxStateMachine(root_password_hash: bytes = b"", root_username: str = "iggy",
                  clients_max: int = CLIENTS_MAX, root_created_at_us: int = 0)
      A fresh state holding only the root user (id 0). The root password hash (and the format
      time as root's created_at) is supplied by `metavsr format` (hashed outside, e.g. scrypt
      with a random salt); there is no default
      password: an empty hash matches no password, so root cannot log in until it is set.

  admit(operation: int, body: bytes) -> bytes                        (static, pure)
      Bounds, shapes and decoding only; raises DomainError(code); returns the canonical body to
      put in the log. For CreateUser (141), ChangePassword (144), CreatePAT (146) and Register
      (1) the body given must already be the post-admission form, built with the pure helpers:
        users_wire.rewrite_create_user(sdk_body, password_hash) -> bytes
        users_wire.rewrite_change_password(sdk_body, new_password_hash) -> bytes
        users_wire.rewrite_create_token(sdk_body, token_hash) -> bytes
        sessions_wire.encode_register(user_id, token_hash=None, password_hash=None) -> bytes
      with users_wire.decode_create_user_request / decode_change_password_request /
      decode_create_token_request to read the secret out of the SDK body, and
      users_wire.encode_token_created(token) for the CreatePAT reply payload (apply returns an
      empty result for 146: the token is never in the log or state).

  apply(op, timestamp_us, client: bytes(16), session, request, user_id, operation, body)
        -> tuple[int, bytes]                                        (deterministic)
      (status, result body): 0 = ok, else an Iggy error code (domains.errors). A state-check
      failure is a committed no-op whose error is the reply. Register (1) creates a session
      numbered `op` and returns [user_id u32][session u64]; Logout (3) ends it and leaves the
      client's groups; every other op is recorded as the client's (last request, reply).
      A request number at or below the client's last is answered from the table, never
      applied twice. Ops never decrease; the requests of one prepare share its op.

  client_reply(client, request) -> tuple[int, bytes] | None
      The cached reply when `request` is the client's last; (59, b"") when older; None when
      it has not been applied (or the client has no session).
  lookup_session(client, session) -> int | None       the session's user id, if it is live.
  client_info(client) -> (user_id, session, [(stream, topic, group)]) | None   for "me" (20).
  user_credentials(user: int | str) -> (user_id, status, password_hash) | None
  token_by_locator(locator: bytes) -> (user_id, status, token_hash, expiry_at_us; 0 = never)
      | None    a token hash starts with its locator (users_wire.TOKEN_LOCATOR_SIZE bytes)

  query(code: int, body: bytes, user_id: int) -> tuple[int, bytes]
      Reads by Iggy legacy command code: 31 user, 32 users, 41 own PATs, 200/201 stream(s),
      300/301 topic(s), 600/601 group(s). Results in Iggy's response encodings; a missing
      single object is (0, b""); other failures are (code, b""); unknown codes are 3.
  counts() -> dict[str, int]                            catalogue sizes for stats.

  snapshot() -> dict[str, tuple[int, bytes]]   domain -> (section version, section bytes);
      a section unchanged since the last call is the same bytes object (dirty flag per domain).
  take_checkpoint_changes() -> tuple[str, ...] sections changed since the last checkpoint
      (now counted as checkpointed); encode_sections(names) encodes them without changing
      anything, so a forked child can cut a checkpoint while the parent applies on.
  restore(sections) -> None                    replaces the whole state.
  digests() -> dict[str, bytes]                per-domain xxh3-128 of its section.
  digest() -> bytes                            xxh3-128 over the per-domain digests.
"""

from domains.errors import DomainError
from domains.mux import MuxStateMachine

__all__ = ["DomainError", "MuxStateMachine"]
