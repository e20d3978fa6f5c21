"""Operation numbers and read codes of metavsr: Iggy's (iggy-protocol.md section 3).

Owns: the numeric names of every replicated operation and every read (legacy command code)
the domains answer. Data only.
"""

from __future__ import annotations

REGISTER = 1
LOGOUT = 3
CREATE_STREAM, UPDATE_STREAM, DELETE_STREAM, PURGE_STREAM = 128, 129, 130, 131
CREATE_TOPIC, UPDATE_TOPIC, DELETE_TOPIC, PURGE_TOPIC = 132, 133, 134, 135
CREATE_PARTITIONS, DELETE_PARTITIONS = 136, 137
DELETE_SEGMENTS = 138  # partition plane: not a metadata operation here
CREATE_CONSUMER_GROUP, DELETE_CONSUMER_GROUP = 139, 140
CREATE_USER, UPDATE_USER, DELETE_USER, CHANGE_PASSWORD, UPDATE_PERMISSIONS = (
    141, 142, 143, 144, 145)
CREATE_PAT, DELETE_PAT = 146, 147
JOIN_CONSUMER_GROUP, LEAVE_CONSUMER_GROUP = 148, 149

NAMES: dict[int, str] = {
    REGISTER: "Register", LOGOUT: "Logout",
    CREATE_STREAM: "CreateStream", UPDATE_STREAM: "UpdateStream",
    DELETE_STREAM: "DeleteStream", PURGE_STREAM: "PurgeStream",
    CREATE_TOPIC: "CreateTopic", UPDATE_TOPIC: "UpdateTopic",
    DELETE_TOPIC: "DeleteTopic", PURGE_TOPIC: "PurgeTopic",
    CREATE_PARTITIONS: "CreatePartitions", DELETE_PARTITIONS: "DeletePartitions",
    CREATE_CONSUMER_GROUP: "CreateConsumerGroup", DELETE_CONSUMER_GROUP: "DeleteConsumerGroup",
    CREATE_USER: "CreateUser", UPDATE_USER: "UpdateUser", DELETE_USER: "DeleteUser",
    CHANGE_PASSWORD: "ChangePassword", UPDATE_PERMISSIONS: "UpdatePermissions",
    CREATE_PAT: "CreatePersonalAccessToken", DELETE_PAT: "DeletePersonalAccessToken",
    JOIN_CONSUMER_GROUP: "JoinConsumerGroup", LEAVE_CONSUMER_GROUP: "LeaveConsumerGroup",
}

# Reads: Iggy legacy command codes carried by NonReplicated (operation 2).
GET_USER, GET_USERS, GET_PATS = 31, 32, 41
GET_STREAM, GET_STREAMS = 200, 201
GET_TOPIC, GET_TOPICS = 300, 301
GET_CONSUMER_GROUP, GET_CONSUMER_GROUPS = 600, 601

READ_NAMES: dict[int, str] = {
    GET_USER: "GetUser", GET_USERS: "GetUsers", GET_PATS: "GetPersonalAccessTokens",
    GET_STREAM: "GetStream", GET_STREAMS: "GetStreams",
    GET_TOPIC: "GetTopic", GET_TOPICS: "GetTopics",
    GET_CONSUMER_GROUP: "GetConsumerGroup", GET_CONSUMER_GROUPS: "GetConsumerGroups",
}
