"""An independent, plain reference model of metavsr's metadata semantics (issue 3, DESIGN
section 7, iggy-protocol.md section 10), written from the spec with dicts and lists only.
It answers each generated step with (status, decoded result) in the shapes of decode.py."""

from __future__ import annotations

from tests.domains.decode import GLOBAL, STREAM

U64_MAX = (1 << 64) - 1
READ_ALL_STREAMS = {"manage_streams", "read_streams"}


def lowest_free(used) -> int:
    ident = 0
    while ident in used:
        ident += 1
    return ident


class Fail(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


class Model:
    def __init__(self, clients_max: int, root_created_at: int = 0) -> None:
        self.clients_max = clients_max
        self.streams: dict[int, dict] = {}
        self.users: dict[int, dict] = {0: self._user(0, "iggy", root_created_at, 1, None)}
        self.sessions: dict[bytes, dict] = {}  # insertion order = session order
        self.token_hashes: set[bytes] = set()
        self.registered = 0  # successful Registers: a session's member id

    @staticmethod
    def _user(uid, name, created, status, perms):
        return {"id": uid, "name": name, "created": created, "status": status, "perms": perms,
                "tokens": {}}

    # ---- finders ---------------------------------------------------------------------
    def _stream(self, ident):
        for s in self.streams.values():
            if s["id"] == ident or s["name"] == ident:
                return s
        return None

    @staticmethod
    def _topic(stream, ident):
        for t in stream["topics"].values():
            if t["id"] == ident or t["name"] == ident:
                return t
        return None

    @staticmethod
    def _group(topic, ident):
        for g in topic["groups"].values():
            if g["id"] == ident or g["name"] == ident:
                return g
        return None

    def _user_by(self, ident):
        for u in self.users.values():
            if u["id"] == ident or u["name"] == ident:
                return u
        return None

    def need_stream(self, ident):
        s = self._stream(ident)
        if s is None:
            raise Fail(1009)
        return s

    def need_topic(self, stream, ident):
        t = self._topic(stream, ident)
        if t is None:
            raise Fail(2010)
        return t

    # ---- permissions (Iggy's inheritance, from the spec) -----------------------------
    def can(self, uid, action, sid=None, tid=None) -> bool:
        if uid == 0:
            return True
        perms = self.users[uid]["perms"]
        if perms is None:
            return False
        glob, streams = perms
        s_flags, topics = streams.get(sid, (frozenset(), {}))
        t_flags = topics.get(tid, frozenset())
        if action == "create_stream":
            return "manage_streams" in glob
        if action == "list_streams":
            return bool(glob & READ_ALL_STREAMS)
        if action == "manage_stream":
            return "manage_streams" in glob or "manage_stream" in s_flags
        if action == "read_stream":
            return bool(glob & READ_ALL_STREAMS) or bool(s_flags & {"manage_stream", "read_stream"})
        manage_topic = ("manage_streams" in glob or "manage_topics" in glob
                        or bool(s_flags & {"manage_stream", "manage_topics"})
                        or "manage_topic" in t_flags)
        if action == "manage_topic":
            return manage_topic
        read_topic = (manage_topic or bool(glob & {"read_streams", "read_topics"})
                      or bool(s_flags & {"read_stream", "read_topics"}) or "read_topic" in t_flags)
        if action == "read_topic":
            return read_topic
        if action == "consume":
            return (read_topic or "poll_messages" in glob or "poll_messages" in s_flags
                    or "poll_messages" in t_flags)
        if action == "manage_users":
            return "manage_users" in glob
        if action == "read_users":
            return bool(glob & {"manage_users", "read_users"})
        raise AssertionError(action)

    def permit(self, uid, action, sid=None, tid=None):
        if not self.can(uid, action, sid, tid):
            raise Fail(41)

    # ---- results ---------------------------------------------------------------------
    @staticmethod
    def topic_header(t):
        opts = dict(t["options"])
        compression = {b"none": 1, b"gzip": 2}[opts.get("compression_algorithm", (2, b"none"))[1]]
        expiry = int.from_bytes(opts.get("message_expiry", (12, bytes(8)))[1], "little")
        max_size = int.from_bytes(opts.get("max_topic_size", (12, bytes(8)))[1], "little")
        return (t["id"], t["created"], len(t["parts"]), expiry, compression, max_size, t["name"],
                opts)

    def stream_header(self, s):
        return (s["id"], s["created"], len(s["topics"]), s["name"],
                {k: (2, v.encode()) for k, v in s["options"].items()})

    def stream_details(self, s):
        return (self.stream_header(s),
                [self.topic_header(s["topics"][t]) for t in sorted(s["topics"])])

    def topic_details(self, t):
        return self.topic_header(t), list(enumerate(t["parts"]))

    @staticmethod
    def group_details(g, partitions):
        members = sorted(g["members"].values())
        owned = {m: [] for m in members}
        for p in range(partitions if members else 0):
            owned[members[p % len(members)]].append(p)
        return ((g["id"], partitions, len(members), g["name"]),
                [(m, owned[m]) for m in members])

    @staticmethod
    def user_header(u):
        return u["id"], u["created"], u["status"], u["name"], {}

    def user_details(self, u):
        perms = u["perms"]
        if perms is not None:
            glob, streams = perms
            perms = (glob, {sid: (sf, dict(tf)) for sid, (sf, tf) in streams.items()})
        return self.user_header(u), perms

    # ---- steps -----------------------------------------------------------------------
    def login(self, op, timestamp, client, uid, token=None):
        user = self.users.get(uid)
        if user is None or user["status"] != 1:
            return 42, None
        if token is not None:
            live = [at for token_hash, at in user["tokens"].values()
                    if token_hash == token and (not at or at > timestamp)]
            if not live:
                return 42, None
        if len(self.sessions) >= self.clients_max:
            oldest = next(iter(self.sessions))
            self._end_session(oldest)
        result = (uid, op)
        self.registered += 1
        self.sessions[client] = {"session": op, "number": self.registered, "user": uid,
                                 "request": 0, "reply": (0, result)}
        return 0, result

    def _end_session(self, client):
        for s in self.streams.values():
            for t in s["topics"].values():
                for g in t["groups"].values():
                    g["members"].pop(client, None)
        del self.sessions[client]

    def write(self, op, timestamp, client, request, kind, args):
        entry = self.sessions.get(client)
        if entry is None:
            return 40, None
        if request <= entry["request"]:
            return entry["reply"] if request == entry["request"] else (59, None)
        if kind == "logout":
            self._end_session(client)
            return 0, None
        uid = entry["user"]
        try:
            acting = self.users.get(uid)
            if acting is None or (uid != 0 and acting["status"] != 1):
                raise Fail(41)
            result = getattr(self, "w_" + kind)(timestamp, client, entry, uid, *args)
            reply = (0, result)
        except Fail as failure:
            reply = (failure.code, None)
        if client in self.sessions:
            entry["request"] = request
            entry["reply"] = reply
        return reply

    def retry(self, client, request):
        entry = self.sessions.get(client)
        if entry is None:
            return 40, None
        return entry["reply"] if request == entry["request"] else (59, None)

    def read(self, uid, kind, args):
        acting = self.users.get(uid)
        if acting is None or (uid != 0 and acting["status"] != 1):
            return 41, None
        try:
            return 0, getattr(self, "r_" + kind)(uid, *args)
        except Fail as failure:
            return failure.code, None

    # ---- writes: streams -------------------------------------------------------------
    def w_create_stream(self, ts, client, entry, uid, name):
        self.permit(uid, "create_stream")
        if any(s["name"] == name for s in self.streams.values()):
            raise Fail(1012)
        sid = lowest_free(self.streams)
        self.streams[sid] = {"id": sid, "name": name, "created": ts, "options": {}, "topics": {}}
        return self.stream_details(self.streams[sid])

    def w_update_stream(self, ts, client, entry, uid, ident, name, options):
        s = self.need_stream(ident)
        self.permit(uid, "manage_stream", s["id"])
        if any(o["name"] == name and o is not s for o in self.streams.values()):
            raise Fail(1012)
        s["name"] = name
        s["options"].update(options)

    def w_delete_stream(self, ts, client, entry, uid, ident):
        s = self.need_stream(ident)
        self.permit(uid, "manage_stream", s["id"])
        del self.streams[s["id"]]
        for u in self.users.values():
            if u["perms"] is not None:
                u["perms"][1].pop(s["id"], None)

    def w_purge_stream(self, ts, client, entry, uid, ident):
        s = self.need_stream(ident)
        self.permit(uid, "manage_stream", s["id"])

    def w_create_topic(self, ts, client, entry, uid, sident, parts, name, options):
        s = self.need_stream(sident)
        self.permit(uid, "manage_topic", s["id"])
        if any(t["name"] == name for t in s["topics"].values()):
            raise Fail(2013)
        tid = lowest_free(s["topics"])
        s["topics"][tid] = {"id": tid, "name": name, "created": ts, "parts": [ts] * parts,
                            "options": self._opts(options), "groups": {}, "next_group": 0}
        return self.topic_details(s["topics"][tid])

    @staticmethod
    def _opts(options):
        out = {}
        for key, value in options.items():
            out[key] = (12, value.to_bytes(8, "little")) if isinstance(value, int) else (
                2, value.encode())
        return out

    def w_update_topic(self, ts, client, entry, uid, sident, tident, name, options):
        s = self.need_stream(sident)
        t = self.need_topic(s, tident)
        self.permit(uid, "manage_topic", s["id"], t["id"])
        if any(o["name"] == name and o is not t for o in s["topics"].values()):
            raise Fail(2013)
        t["name"] = name
        t["options"].update(self._opts(options))

    def w_delete_topic(self, ts, client, entry, uid, sident, tident):
        s = self.need_stream(sident)
        t = self.need_topic(s, tident)
        self.permit(uid, "manage_topic", s["id"], t["id"])
        del s["topics"][t["id"]]
        for u in self.users.values():
            if u["perms"] is not None and s["id"] in u["perms"][1]:
                u["perms"][1][s["id"]][1].pop(t["id"], None)

    def w_purge_topic(self, ts, client, entry, uid, sident, tident):
        s = self.need_stream(sident)
        t = self.need_topic(s, tident)
        self.permit(uid, "manage_topic", s["id"], t["id"])

    def w_create_partitions(self, ts, client, entry, uid, sident, tident, count):
        s = self.need_stream(sident)
        t = self.need_topic(s, tident)
        self.permit(uid, "manage_topic", s["id"], t["id"])
        t["parts"].extend([ts] * count)

    def w_delete_partitions(self, ts, client, entry, uid, sident, tident, count):
        s = self.need_stream(sident)
        t = self.need_topic(s, tident)
        self.permit(uid, "manage_topic", s["id"], t["id"])
        if count > len(t["parts"]):
            raise Fail(2019)
        del t["parts"][len(t["parts"]) - count:]

    def w_create_group(self, ts, client, entry, uid, sident, tident, name):
        s = self.need_stream(sident)
        t = self.need_topic(s, tident)
        self.permit(uid, "consume", s["id"], t["id"])
        if any(g["name"] == name for g in t["groups"].values()):
            raise Fail(5004)
        gid = t["next_group"]
        t["next_group"] += 1
        t["groups"][gid] = {"id": gid, "name": name, "members": {}}
        return self.group_details(t["groups"][gid], len(t["parts"]))

    def _target(self, uid, sident, tident, gident):
        s = self.need_stream(sident)
        t = self.need_topic(s, tident)
        self.permit(uid, "consume", s["id"], t["id"])
        g = self._group(t, gident)
        if g is None:
            raise Fail(5000)
        return t, g

    def w_delete_group(self, ts, client, entry, uid, *idents):
        t, g = self._target(uid, *idents)
        del t["groups"][g["id"]]

    def w_join_group(self, ts, client, entry, uid, *idents):
        _, g = self._target(uid, *idents)
        g["members"].setdefault(client, entry["number"] & 0xFFFFFFFF)

    def w_leave_group(self, ts, client, entry, uid, *idents):
        _, g = self._target(uid, *idents)
        if client not in g["members"]:
            raise Fail(5006)
        del g["members"][client]

    # ---- writes: users ---------------------------------------------------------------
    def w_create_user(self, ts, client, entry, uid, name, status, perms):
        self.permit(uid, "manage_users")
        if any(u["name"] == name for u in self.users.values()):
            raise Fail(46)
        new = lowest_free(self.users)
        if perms is not None:
            perms = (perms[0], {sid: (sf, dict(tf)) for sid, (sf, tf) in perms[1].items()})
        self.users[new] = self._user(new, name, ts, status, perms)
        return self.user_details(self.users[new])

    def _need_user(self, ident):
        u = self._user_by(ident)
        if u is None:
            raise Fail(20)
        return u

    def w_update_user(self, ts, client, entry, uid, ident, name, status):
        u = self._need_user(ident)
        self.permit(uid, "manage_users")
        if name is not None and any(o["name"] == name and o is not u for o in self.users.values()):
            raise Fail(46)
        if name is not None:
            u["name"] = name
        if status is not None:
            u["status"] = status

    def w_delete_user(self, ts, client, entry, uid, ident):
        u = self._need_user(ident)
        self.permit(uid, "manage_users")
        if u["id"] == 0:
            raise Fail(48)
        for c in [c for c, e in self.sessions.items() if e["user"] == u["id"]]:
            self._end_session(c)
        for token_hash, _ in u["tokens"].values():
            self.token_hashes.discard(token_hash)
        del self.users[u["id"]]

    def w_change_password(self, ts, client, entry, uid, ident, password_hash):
        u = self._need_user(ident)
        if u["id"] != uid:
            self.permit(uid, "manage_users")

    def w_update_permissions(self, ts, client, entry, uid, ident, perms):
        u = self._need_user(ident)
        self.permit(uid, "manage_users")
        if u["id"] == 0:
            raise Fail(49)
        if perms is not None:
            perms = (perms[0], {sid: (sf, dict(tf)) for sid, (sf, tf) in perms[1].items()})
        u["perms"] = perms

    def w_create_token(self, ts, client, entry, uid, name, expiry, token_hash):
        u = self.users[uid]
        expiry_at = ts + expiry if expiry else 0
        if name in u["tokens"] or token_hash in self.token_hashes:
            raise Fail(51)
        live = {n: v for n, v in u["tokens"].items() if not v[1] or v[1] > ts}
        if len(live) >= 100:
            raise Fail(52)
        for n in set(u["tokens"]) - set(live):
            self.token_hashes.discard(u["tokens"].pop(n)[0])
        u["tokens"][name] = (token_hash, expiry_at)
        self.token_hashes.add(token_hash)

    def w_delete_token(self, ts, client, entry, uid, name):
        u = self.users[uid]
        if name not in u["tokens"]:
            raise Fail(20)
        self.token_hashes.discard(u["tokens"].pop(name)[0])

    # ---- reads -----------------------------------------------------------------------
    def r_get_stream(self, uid, ident):
        s = self._stream(ident)
        if s is None:
            return None
        self.permit(uid, "read_stream", s["id"])
        return self.stream_details(s)

    def r_get_streams(self, uid):
        self.permit(uid, "list_streams")
        return [self.stream_header(self.streams[s]) for s in sorted(self.streams)]

    def r_get_topic(self, uid, sident, tident):
        s = self._stream(sident)
        t = None if s is None else self._topic(s, tident)
        if t is None:
            return None
        self.permit(uid, "read_topic", s["id"], t["id"])
        return self.topic_details(t)

    def r_get_topics(self, uid, sident):
        s = self.need_stream(sident)
        self.permit(uid, "read_stream", s["id"])
        return [self.topic_header(s["topics"][t]) for t in sorted(s["topics"])]

    def r_get_group(self, uid, sident, tident, gident):
        s = self.need_stream(sident)
        t = self.need_topic(s, tident)
        g = self._group(t, gident)
        if g is None:
            return None
        self.permit(uid, "consume", s["id"], t["id"])
        return self.group_details(g, len(t["parts"]))

    def r_get_groups(self, uid, sident, tident):
        s = self.need_stream(sident)
        t = self.need_topic(s, tident)
        self.permit(uid, "consume", s["id"], t["id"])
        return [(g["id"], len(t["parts"]), len(g["members"]), g["name"])
                for _, g in sorted(t["groups"].items())]

    def r_get_user(self, uid, ident):
        u = self._user_by(ident)
        if u is None:
            return None
        if u["id"] != uid:
            self.permit(uid, "read_users")
        return self.user_details(u)

    def r_get_users(self, uid):
        self.permit(uid, "read_users")
        return [self.user_header(self.users[u]) for u in sorted(self.users)]

    def r_get_tokens(self, uid):
        tokens = self.users[uid]["tokens"]
        return [(n, tokens[n][1]) for n in sorted(tokens, key=str.encode)]


assert len(GLOBAL) == 10 and len(STREAM) == 6
