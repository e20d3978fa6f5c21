"""The error catalogue of the domains: every code an operation can answer, with Iggy's numbers.

Owns: `DomainError` (bad input or a failed state check, never a bug) and `CATALOGUE`
(code -> (name, text)). Numbers and names follow Apache Iggy's IggyError where one exists, so
the Iggy SDK shows its own text for them; texts are the SDK's Display texts with details left
out (the code travels, the details do not). Must never hold anything but data (no logic,
no imports), so every layer can depend on it.
"""

from __future__ import annotations


class DomainError(Exception):
    """An operation's answer is an error: `code` is an Iggy error number from CATALOGUE."""

    __slots__ = ("code",)

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


# Named codes: the modules refer to these, never to bare numbers.
INVALID_COMMAND = 3
INVALID_FORMAT = 4
FEATURE_UNAVAILABLE = 5
INVALID_IDENTIFIER = 6
RESOURCE_NOT_FOUND = 20
STALE_CLIENT = 30
UNAUTHENTICATED = 40
UNAUTHORIZED = 41
INVALID_CREDENTIALS = 42
INVALID_USERNAME = 43
INVALID_PASSWORD = 44
INVALID_USER_STATUS = 45
USER_ALREADY_EXISTS = 46
CANNOT_DELETE_USER = 48
CANNOT_CHANGE_PERMISSIONS = 49
INVALID_PAT_NAME = 50
PAT_ALREADY_EXISTS = 51
PATS_LIMIT_REACHED = 52
INVALID_PAT = 53
USERS_LIMIT_REACHED = 55
INVALID_PAT_EXPIRY = 56
REQUEST_ALREADY_APPLIED = 59
STREAM_ID_NOT_FOUND = 1009
STREAM_NAME_ALREADY_EXISTS = 1012
INVALID_STREAM_NAME = 1013
INVALID_TOPIC_SIZE = 1019
TOO_MANY_STREAMS = 1020
TOPIC_ID_NOT_FOUND = 2010
TOPIC_NAME_ALREADY_EXISTS = 2013
INVALID_TOPIC_NAME = 2014
TOO_MANY_PARTITIONS = 2015
INVALID_PARTITIONS_COUNT = 2019
TOO_MANY_TOPICS = 2021
UNSUPPORTED_OPTION_KEY = 4041
INVALID_OPTION_VALUE = 4042
OPTIONS_LIMITS_EXCEEDED = 4043
CONSUMER_GROUP_ID_NOT_FOUND = 5000
CONSUMER_GROUP_NAME_ALREADY_EXISTS = 5004
INVALID_CONSUMER_GROUP_NAME = 5005
CONSUMER_GROUP_MEMBER_NOT_FOUND = 5006
# metavsr's own (Iggy has no bound on groups per topic); the SDK shows its generic "Error".
TOO_MANY_CONSUMER_GROUPS = 5100

# code -> (name, text). Texts are what the Iggy SDK prints for the code.
CATALOGUE: dict[int, tuple[str, str]] = {
    INVALID_COMMAND: ("invalid_command", "Invalid command"),
    INVALID_FORMAT: ("invalid_format", "Invalid format"),
    FEATURE_UNAVAILABLE: ("feature_unavailable", "Feature is unavailable"),
    INVALID_IDENTIFIER: ("invalid_identifier", "Invalid identifier"),
    RESOURCE_NOT_FOUND: ("resource_not_found", "Resource with key:  was not found."),
    STALE_CLIENT: ("stale_client", "Stale client"),
    UNAUTHENTICATED: ("unauthenticated", "Unauthenticated"),
    UNAUTHORIZED: ("unauthorized", "Unauthorized"),
    INVALID_CREDENTIALS: ("invalid_credentials", "Invalid credentials"),
    INVALID_USERNAME: ("invalid_username", "Invalid username"),
    INVALID_PASSWORD: ("invalid_password", "Invalid password"),
    INVALID_USER_STATUS: ("invalid_user_status", "Invalid user status"),
    USER_ALREADY_EXISTS: ("user_already_exists", "User already exists"),
    CANNOT_DELETE_USER: ("cannot_delete_user", "Cannot delete user with ID: 0"),
    CANNOT_CHANGE_PERMISSIONS: (
        "cannot_change_permissions", "Cannot change permissions for user with ID: 0"),
    INVALID_PAT_NAME: ("invalid_personal_access_token_name", "Invalid personal access token name"),
    PAT_ALREADY_EXISTS: (
        "personal_access_token_already_exists",
        "Personal access token:  for user with ID: 0 already exists"),
    PATS_LIMIT_REACHED: (
        "personal_access_tokens_limit_reached",
        "User with ID: 0 has reached the maximum number of personal access tokens: 0"),
    INVALID_PAT: ("invalid_personal_access_token", "Invalid personal access token"),
    USERS_LIMIT_REACHED: ("users_limit_reached", "Users limit reached."),
    INVALID_PAT_EXPIRY: (
        "invalid_personal_access_token_expiry", "Invalid personal access token expiry"),
    REQUEST_ALREADY_APPLIED: (
        "request_already_applied", "Request already applied; its reply is no longer available"),
    STREAM_ID_NOT_FOUND: ("stream_id_not_found", "Stream with ID: 0 was not found."),
    STREAM_NAME_ALREADY_EXISTS: (
        "stream_name_already_exists", "Stream with name:  already exists."),
    INVALID_STREAM_NAME: ("invalid_stream_name", "Invalid stream name"),
    INVALID_TOPIC_SIZE: (
        "invalid_topic_size",
        "Max topic size cannot be lower than segment size. "
        "Max topic size: server_default < segment size: 0 B."),
    TOO_MANY_STREAMS: ("too_many_streams", "Too many streams"),
    TOPIC_ID_NOT_FOUND: (
        "topic_id_not_found", "Topic with ID: 0 for stream with ID: 0 was not found."),
    TOPIC_NAME_ALREADY_EXISTS: (
        "topic_name_already_exists", "Topic with name:  for stream with ID: 0 already exists."),
    INVALID_TOPIC_NAME: ("invalid_topic_name", "Invalid topic name"),
    TOO_MANY_PARTITIONS: ("too_many_partitions", "Too many partitions"),
    INVALID_PARTITIONS_COUNT: ("invalid_partitions_count", "Invalid partitions count"),
    TOO_MANY_TOPICS: ("too_many_topics", "Too many topics"),
    UNSUPPORTED_OPTION_KEY: ("unsupported_option_key", "Unsupported option key: "),
    INVALID_OPTION_VALUE: ("invalid_option_value", "Invalid option value for key: "),
    OPTIONS_LIMITS_EXCEEDED: ("options_limits_exceeded", "Options block exceeds its limits: "),
    CONSUMER_GROUP_ID_NOT_FOUND: (
        "consumer_group_id_not_found",
        "Consumer group with ID: 0 for topic with ID: 0 was not found."),
    CONSUMER_GROUP_NAME_ALREADY_EXISTS: (
        "consumer_group_name_already_exists",
        "Consumer group with name:  for topic with ID: 0 already exists."),
    INVALID_CONSUMER_GROUP_NAME: ("invalid_consumer_group_name", "Invalid consumer group name"),
    CONSUMER_GROUP_MEMBER_NOT_FOUND: (
        "consumer_group_member_not_found",
        "Consumer group member with client ID: 0 for group with ID: 0 for topic with ID: 0 "
        "was not found."),
    TOO_MANY_CONSUMER_GROUPS: ("too_many_consumer_groups", "Error"),
}
