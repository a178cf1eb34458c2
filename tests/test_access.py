"""Scoped tokens and the hub's access rules, as pure functions (no server): every rule of
``docs/hub-protocol.md`` "Who may do what", and every way a token can be wrong."""

from __future__ import annotations

import base64
import json

import pytest

from glm_live.wire.auth import AuthError, Grant, TokenSigner, admin_grant, room_matches
from glm_live.wire.hub.access import read_refusal, run_of, write_refusal

NOW = 1_800_000_000.0
SIGNER = TokenSigner("the-admin-token")
BOB = Grant("bob", ("chat:*", "news"), ("chat:*", "@*"))


@pytest.mark.parametrize(
    ("patterns", "room", "expected"),
    [
        (["chat:*"], "chat:lobby", True),
        (["chat:*"], "chat:", True),
        (["chat:*"], "chatter", False),
        (["*"], "anything at all", True),
        (["@*"], "@alice", True),
        (["@*"], "alice", False),
        (["a*c"], "abbbc", True),
        (["a*c"], "abbbcd", False),
        (["room.[1]"], "room.[1]", True),  # no character but * is special
        (["room.?"], "room.x", False),
        ([], "chat:lobby", False),
    ],
)
def test_room_patterns(patterns: list[str], room: str, expected: bool) -> None:
    assert room_matches(patterns, room) is expected


def test_an_issued_token_verifies_to_its_grant_and_nothing_else_does() -> None:
    token, grant = SIGNER.issue("bob", ["chat:*"], ["@*"], ttl_s=60, now=NOW)
    assert token.startswith("glt_")
    assert SIGNER.verify(token, NOW + 59) == grant
    assert (grant.name, grant.read, grant.write, grant.expires_at) == (
        "bob",
        ("chat:*",),
        ("@*",),
        NOW + 60,
    )
    assert not grant.admin
    with pytest.raises(AuthError) as expired:
        SIGNER.verify(token, NOW + 60)
    assert expired.value.code == "expired"
    with pytest.raises(AuthError) as foreign:
        TokenSigner("another-admin-token").verify(token, NOW)
    assert foreign.value.code == "invalid"


def test_a_tampered_token_is_refused() -> None:
    token, _ = SIGNER.issue("bob", ["chat:*"], [], ttl_s=60, now=NOW)
    body, signature = token[4:].split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["r"] = ["*"]  # bob grants himself every room
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    for bad in [f"glt_{forged}.{signature}", token[:-2], "glt_x", "glt_a.b.c", "", "Bearer x"]:
        with pytest.raises(AuthError) as refused:
            SIGNER.verify(bad, NOW)
        assert refused.value.code == "invalid"
        assert "the-admin-token" not in refused.value.message


def test_the_admin_token_is_the_admin() -> None:
    assert SIGNER.verify("the-admin-token", NOW) == admin_grant()
    assert SIGNER.is_admin("the-admin-token")
    assert not SIGNER.is_admin("the-admin-toke")


@pytest.mark.parametrize(
    ("name", "read", "write", "ttl_s", "says"),
    [
        ("", [], [], 60, "name"),
        ("bob smith", [], [], 60, "name"),
        ("admin", [], [], 60, "admin"),
        ("bob", "chat:*", [], 60, "read must be a list"),
        ("bob", [""], [], 60, "non-empty"),
        ("bob", [], [3], 60, "write"),
        ("bob", [], [], 0, "ttl_s"),
        ("bob", [], [], 10**9, "ttl_s"),
        ("bob", [], [], True, "ttl_s"),
    ],
)
def test_a_bad_token_request_says_which_field(
    name: str, read: object, write: object, ttl_s: float, says: str
) -> None:
    with pytest.raises(AuthError) as refused:
        SIGNER.issue(name, read, write, ttl_s=ttl_s, now=NOW)  # type: ignore[arg-type]
    assert refused.value.code == "bad_request"
    assert says in refused.value.message


def test_a_ticket_carries_its_holders_grant_briefly() -> None:
    _, grant = SIGNER.issue("bob", ["chat:*"], ["chat:*"], ttl_s=3600, now=NOW)
    ticket, ticket_grant = SIGNER.ticket_for(grant, NOW)
    assert ticket_grant.ticket
    assert (ticket_grant.name, ticket_grant.read, ticket_grant.write) == (
        "bob",
        grant.read,
        grant.write,
    )
    assert ticket_grant.expires_at == NOW + 30
    assert SIGNER.verify(ticket, NOW + 29).ticket
    _, admin_ticket = SIGNER.ticket_for(admin_grant(), NOW)
    assert admin_ticket.admin
    assert admin_ticket.ticket
    # A ticket never outlives the token it was asked with.
    _, short = SIGNER.issue("bob", [], [], ttl_s=10, now=NOW)
    assert SIGNER.ticket_for(short, NOW)[1].expires_at == NOW + 10


def test_a_grant_never_shows_more_than_its_name_and_rooms() -> None:
    token, grant = SIGNER.issue("bob", ["chat:*"], [], ttl_s=60, now=NOW)
    assert token not in repr(grant)
    assert "the-admin-token" not in repr(SIGNER)


# -- the rules -----------------------------------------------------------------------------------


def test_an_inbox_is_read_by_its_owner_only_whatever_the_patterns() -> None:
    assert read_refusal(BOB, "@bob") is None
    nosy = Grant("mallory", ("*", "@*"), ())
    refusal = read_refusal(nosy, "@bob")
    assert refusal == "only bob reads the inbox @bob; yours is @mallory"
    assert read_refusal(admin_grant(), "@bob") is None


def test_writing_to_an_inbox_follows_the_write_patterns() -> None:
    assert write_refusal(BOB, "@alice") is None
    quiet = Grant("carol", ("*",), ("chat:*",))
    assert (
        write_refusal(quiet, "@alice") == "carol may not write to @alice: its token writes chat:*"
    )


def test_a_run_is_commanded_by_its_owner_and_the_admin_only() -> None:
    assert run_of("control:r-1") == "r-1"
    assert run_of("run:r-1") == "r-1"
    assert run_of("control:") is None
    assert run_of("chat:r-1") is None
    everything = Grant("eve", ("*",), ("*",))
    assert write_refusal(BOB, "control:r-1", owner="bob") is None
    assert "only the identity that started run 'r-1'" in (
        write_refusal(everything, "control:r-1", owner="bob") or ""
    )
    assert "no run 'r-2' is known" in (write_refusal(everything, "control:r-2", owner=None) or "")
    assert write_refusal(admin_grant(), "control:r-1", owner="bob") is None
    # The owner reads its run's rooms whatever its patterns say; others by their patterns.
    assert read_refusal(BOB, "run:r-1", owner="bob") is None
    assert read_refusal(Grant("carol", ("chat:*",), ()), "run:r-1", owner="bob") is not None
    assert read_refusal(everything, "run:r-1", owner="bob") is None


@pytest.mark.parametrize("room", ["presence", "agents", "run:r-1", "_auth", "_anything"])
def test_the_runtimes_rooms_are_written_by_the_runtime_only(room: str) -> None:
    everything = Grant("eve", ("*",), ("*",))
    assert write_refusal(everything, room) is not None
    assert write_refusal(admin_grant(), room) is None


def test_underscore_rooms_are_not_read_by_clients() -> None:
    assert read_refusal(Grant("eve", ("*",), ()), "_auth") == "_auth is the runtime's own room"
    assert read_refusal(BOB, "news") is None
    assert read_refusal(BOB, "sports") == "bob may not read sports: its token reads chat:*, news"
    assert read_refusal(Grant("z", (), ()), "x") == "z may not read x: its token reads no rooms"
