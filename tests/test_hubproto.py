"""The hub protocol without sockets: frames, their encoding, every rule, and both ends' state.

The expected JSON is written out by hand (it is what clients in other languages rely on, and
what ``docs/hub-protocol.md`` documents), never computed by the code under test.
"""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

import pytest

from glm_live.wire.hub import (
    Ack,
    ClientState,
    DedupeWindow,
    ErrorFrame,
    Gap,
    GapReport,
    Hello,
    HubFrameError,
    HubState,
    Join,
    Joined,
    Leave,
    Left,
    Message,
    Ping,
    Pong,
    Publication,
    Publish,
    Refusal,
    Subscription,
    Welcome,
    decode_client_frame,
    decode_hub_frame,
    decode_stored,
    encode,
    encode_stored,
    resume_point,
)

# -- frames: encoding -------------------------------------------------------------------------

CLIENT_FRAMES: list[tuple[Any, dict[str, Any]]] = [
    (
        Hello("c1", "alice", "notebook"),
        {"type": "hello", "id": "c1", "name": "alice", "kind": "notebook"},
    ),
    (Hello("c1", None, "agent"), {"type": "hello", "id": "c1", "kind": "agent"}),
    (Hello(), {"type": "hello"}),
    (
        Hello("c1", None, "notebook", "s9"),
        {"type": "hello", "id": "c1", "kind": "notebook", "session": "s9"},
    ),
    (Join("news", 4, "e1"), {"type": "join", "room": "news", "since": 4, "epoch": "e1"}),
    (Join("news"), {"type": "join", "room": "news", "since": None, "epoch": None}),
    (Leave("news"), {"type": "leave", "room": "news"}),
    (
        Publish("news", 7, {"a": [1, 2]}),
        {"type": "publish", "room": "news", "id": 7, "data": {"a": [1, 2]}},
    ),
    (Publish("news", 8, None), {"type": "publish", "room": "news", "id": 8, "data": None}),
    (Ping(1.5), {"type": "ping", "t": 1.5}),
]

HUB_FRAMES: list[tuple[Any, dict[str, Any]]] = [
    (
        Welcome("c1", "e1", 123, "bob", "s9", True, 41, {"name": "bob", "read": ["@bob"]}),
        {
            "type": "welcome",
            "id": "c1",
            "epoch": "e1",
            "server_time_ns": 123,
            "name": "bob",
            "session": "s9",
            "resumed": True,
            "last_id": 41,
            "grant": {"name": "bob", "read": ["@bob"]},
        },
    ),
    (
        Joined("news", "e1", 9, None),
        {"type": "joined", "room": "news", "epoch": "e1", "last": 9, "gap": None},
    ),
    (
        Joined("news", "e1", 9, GapReport("trimmed", lost_from=2, lost_to=4)),
        {
            "type": "joined",
            "room": "news",
            "epoch": "e1",
            "last": 9,
            "gap": {"reason": "trimmed", "lost_from": 2, "lost_to": 4},
        },
    ),
    (
        Joined("news", "e2", 3, GapReport("epoch", old_epoch="e1")),
        {
            "type": "joined",
            "room": "news",
            "epoch": "e2",
            "last": 3,
            "gap": {"reason": "epoch", "old_epoch": "e1"},
        },
    ),
    (Left("news"), {"type": "left", "room": "news"}),
    (
        Message("news", 5, "e1", {"x": 1}, "alice", "alice", 7, 99, "s9"),
        {
            "type": "msg",
            "room": "news",
            "seq": 5,
            "epoch": "e1",
            "from": "alice",
            "name": "alice",
            "id": 7,
            "session": "s9",
            "data": {"x": 1},
            "ts_ns": 99,
        },
    ),
    (
        Ack(7, "news", 5, False),
        {"type": "ack", "id": 7, "room": "news", "seq": 5, "duplicate": False},
    ),
    (Pong(1.5), {"type": "pong", "t": 1.5}),
    (
        ErrorFrame("bad_json", "not valid JSON"),
        {"type": "error", "code": "bad_json", "message": "not valid JSON"},
    ),
    (
        ErrorFrame("forbidden", "only bob reads @bob", "@bob"),
        {"type": "error", "code": "forbidden", "message": "only bob reads @bob", "room": "@bob"},
    ),
    (
        ErrorFrame("id_reused", "id 3 was used for a", "b", 3),
        {
            "type": "error",
            "code": "id_reused",
            "message": "id 3 was used for a",
            "room": "b",
            "id": 3,
        },
    ),
]


@pytest.mark.parametrize(("frame", "wire"), CLIENT_FRAMES)
def test_client_frames_encode_to_the_documented_json_and_decode_back(
    frame: Any, wire: dict[str, Any]
) -> None:
    assert json.loads(encode(frame)) == wire
    assert decode_client_frame(json.dumps(wire)) == frame


@pytest.mark.parametrize(("frame", "wire"), HUB_FRAMES)
def test_hub_frames_encode_to_the_documented_json_and_decode_back(
    frame: Any, wire: dict[str, Any]
) -> None:
    assert json.loads(encode(frame)) == wire
    assert decode_hub_frame(json.dumps(wire)) == frame


def test_hello_without_optional_fields_and_a_ping_without_t() -> None:
    assert decode_client_frame('{"type": "hello", "name": null}') == Hello(None, None, None)
    assert decode_client_frame('{"type": "ping"}') == Ping(None)
    assert json.loads(encode(Pong(None))) == {"type": "pong", "t": None}


def test_a_message_from_the_runtime_has_no_publish_id() -> None:
    wire = {"type": "msg", "room": "agents", "seq": 1, "epoch": "e", "from": "runtime",
            "name": "", "id": None, "data": 1, "ts_ns": 5}  # fmt: skip
    message = decode_hub_frame(json.dumps(wire))
    assert message == Message("agents", 1, "e", 1, "runtime", "", None, 5)


def test_the_stored_form_is_a_message_without_seq_and_epoch() -> None:
    stored = encode_stored("news", "alice", "alice", 7, [1, "two"], 42, "s9")
    assert json.loads(stored) == {
        "type": "msg",
        "room": "news",
        "from": "alice",
        "name": "alice",
        "id": 7,
        "session": "s9",
        "data": [1, "two"],
        "ts_ns": 42,
    }
    assert decode_stored(stored, 12, "e9") == Message(
        "news", 12, "e9", [1, "two"], "alice", "alice", 7, 42, "s9"
    )
    with pytest.raises(HubFrameError):
        decode_stored('{"type": "msg"}', 1, "e")


# -- frames: what is refused, and why -------------------------------------------------------------

BAD_CLIENT_FRAMES = [
    ("{nope", "bad_json", "not valid JSON"),
    ("[1, 2]", "bad_request", "object with a type"),
    ('{"room": "x"}', "bad_request", "object with a type"),
    ('{"type": 3}', "bad_request", "object with a type"),
    (
        '{"type": "teleport"}',
        "unknown_type",
        "unknown type 'teleport'; use hello, join, leave, ping, publish",
    ),
    ('{"type": "publish", "room": "x"}', "bad_request", "publish needs an integer id"),
    ('{"type": "publish", "room": "x", "id": true, "data": 1}', "bad_request", "integer id"),
    ('{"type": "publish", "room": "x", "id": "1", "data": 1}', "bad_request", "integer id"),
    ('{"type": "publish", "room": "x", "id": 1}', "bad_request", "publish needs data"),
    (
        '{"type": "publish", "room": "", "id": 1, "data": 1}',
        "bad_request",
        "room must be a non-empty string of at most 256",
    ),
    ('{"type": "publish", "id": 1, "data": 1}', "bad_request", "room must be"),
    (
        '{"type": "join", "room": "x", "since": -1}',
        "bad_request",
        "since must be null or a non-negative integer",
    ),
    ('{"type": "join", "room": "x", "since": true}', "bad_request", "since must be"),
    ('{"type": "join", "room": "x", "since": "3"}', "bad_request", "since must be"),
    ('{"type": "join", "room": "x", "epoch": 5}', "bad_request", "epoch must be null or"),
    ('{"type": "leave"}', "bad_request", "room must be"),
    ('{"type": "hello", "id": ""}', "bad_request", "id must be a non-empty string of at most 128"),
    (
        '{"type": "hello", "kind": "' + "k" * 33 + '"}',
        "bad_request",
        "kind must be a non-empty string of at most 32",
    ),
]


@pytest.mark.parametrize(("text", "code", "says"), BAD_CLIENT_FRAMES)
def test_a_bad_client_frame_is_a_typed_error_saying_what_was_wrong(
    text: str, code: str, says: str
) -> None:
    with pytest.raises(HubFrameError) as caught:
        decode_client_frame(text)
    assert caught.value.code == code
    assert says in caught.value.message
    assert isinstance(caught.value, ValueError)


def test_a_room_name_of_256_characters_is_the_longest_accepted() -> None:
    assert decode_client_frame(json.dumps({"type": "leave", "room": "r" * 256})) == Leave("r" * 256)
    with pytest.raises(HubFrameError, match="at most 256"):
        decode_client_frame(json.dumps({"type": "leave", "room": "r" * 257}))


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ('{"type": "msg", "room": "r", "epoch": "e"}', "bad_request"),  # no seq
        ('{"type": "msg", "room": "r", "seq": true, "epoch": "e"}', "bad_request"),
        ('{"type": "joined", "room": "r", "epoch": "e", "last": 1, "gap": 3}', "bad_request"),
        ('{"type": "ack", "room": "r"}', "bad_request"),  # no id
        ('{"type": "presence-v2"}', "unknown_type"),  # a newer hub: safe to ignore
        ("nope", "bad_json"),
    ],
)
def test_a_bad_hub_frame_is_a_typed_error(text: str, code: str) -> None:
    with pytest.raises(HubFrameError) as caught:
        decode_hub_frame(text)
    assert caught.value.code == code


# -- rule: the resume point -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("since", "epoch", "last", "first", "expected"),
    [
        # live from now: nothing to replay, no gap
        (None, None, 10, 1, (10, None)),
        (None, "e", 10, 6, (10, None)),
        # everything kept, on a first join (no epoch): no gap even though some was trimmed
        (0, None, 10, 6, (0, None)),
        # resuming inside the history: replay after since
        (7, "e", 10, 6, (7, None)),
        (5, "e", 10, 6, (5, None)),  # exactly the message before the first kept
        # resuming before the history kept: a trimmed gap, replay what is kept
        (2, "e", 10, 6, (2, GapReport("trimmed", lost_from=3, lost_to=5))),
        (2, None, 10, 6, (2, GapReport("trimmed", lost_from=3, lost_to=5))),
        (0, "e", 10, 6, (0, GapReport("trimmed", lost_from=1, lost_to=5))),
        # another epoch: the history seen is gone; replay all the new one kept
        (7, "old", 3, 1, (0, GapReport("epoch", old_epoch="old"))),
        (None, "old", 3, 1, (0, GapReport("epoch", old_epoch="old"))),
        (7, "old", 10, 6, (0, GapReport("epoch", old_epoch="old", lost_from=1, lost_to=5))),
        # an empty room
        (0, None, 0, 1, (0, None)),
        (4, "e", 0, 1, (4, None)),
    ],
)
def test_resume_point(
    since: int | None,
    epoch: str | None,
    last: int,
    first: int,
    expected: tuple[int, GapReport | None],
) -> None:
    assert resume_point(Join("r", since, epoch), "e", last, first) == expected


# -- rules applied: HubState ----------------------------------------------------------------------


def publication(room: str, msg_id: int | None, data: Any = None, sender: str = "c1") -> Publication:
    return Publication(room, sender, "alice", msg_id, data)


def test_sequence_numbers_are_per_room_and_gapless() -> None:
    hub = HubState("e1")
    seqs = [hub.append(publication(room, i + 1), 0)[0].seq for i, room in enumerate("aabab")]
    assert seqs == [1, 2, 1, 3, 2]
    _, message, text = hub.append(publication("a", 6, "x"), 77)
    assert message == Message("a", 4, "e1", "x", "c1", "alice", 6, 77)
    assert json.loads(text)["seq"] == 4


def test_history_is_bounded_and_a_join_replays_what_is_kept() -> None:
    hub = HubState("e1", history=3)
    for i in range(1, 6):
        hub.append(publication("r", i, i), 0)
    everything = hub.join(Join("r", 0, None))
    assert everything.joined == Joined("r", "e1", 5, None)
    assert [seq for seq, _ in everything.entries] == [3, 4, 5]
    assert [json.loads(text)["data"] for _, text in everything.entries] == [3, 4, 5]
    behind = hub.join(Join("r", 1, "e1"))
    assert behind.joined.gap == GapReport("trimmed", lost_from=2, lost_to=2)
    assert [seq for seq, _ in behind.entries] == [3, 4, 5]
    live = hub.join(Join("r", None, None))
    assert (live.since, live.entries) == (5, [])
    # A new bound applies to rooms created from then on.
    hub.history = 1
    for i in range(6, 9):
        hub.append(publication("other", i, i), 0)
    assert [seq for seq, _ in hub.join(Join("other", 0, None)).entries] == [3]


def test_a_join_with_another_epoch_reports_an_epoch_gap() -> None:
    restarted = HubState("e2")
    restarted.append(publication("r", 1, "after"), 0)
    replay = restarted.join(Join("r", 40, "e1"))
    assert replay.joined == Joined("r", "e2", 1, GapReport("epoch", old_epoch="e1"))
    assert [json.loads(t)["data"] for _, t in replay.entries] == ["after"]


def test_a_re_sent_publish_id_is_acknowledged_again_and_not_appended() -> None:
    hub = HubState("e1")
    first, message, _ = hub.append(publication("a", 1, "one"), 0)
    assert (first.seq, first.duplicate, message is not None) == (1, False, True)
    hub.append(publication("b", 2, "two"), 0)
    again, message, text = hub.append(publication("a", 1, "one"), 0)
    assert (again.room, again.seq, again.duplicate, message, text) == ("a", 1, True, None, "")
    # The ack of a re-send names the room the id first went to.
    assert hub.append(publication("elsewhere", 2), 0)[0] == type(first)("b", 1, True)
    # An id below the highest handled that was never seen is a re-send too (ids increase).
    assert hub.append(publication("a", 3), 0)[0].duplicate is False
    assert hub.append(publication("a", 3), 0)[0].duplicate is True
    assert [seq for seq, _ in hub.join(Join("a", 0, None)).entries] == [1, 2]
    # Dedupe is per sender: another client's id 1 is its own.
    assert hub.append(publication("a", 1, sender="c2"), 0)[0] == type(first)("a", 3, False)
    # The runtime's publications carry no id and are never deduped.
    runtime = [hub.append(publication("a", None), 0)[0] for _ in range(2)]
    assert [(a.seq, a.duplicate) for a in runtime] == [(4, False), (5, False)]


def test_the_dedupe_window_forgets_old_ids_but_still_refuses_them() -> None:
    window = DedupeWindow(2)
    for msg_id in (1, 2, 3):
        assert window.seen("c", msg_id, "r") is None
        window.record("c", msg_id, "r", msg_id * 10)
    remembered = window.seen("c", 3, "r")
    forgotten = window.seen("c", 1, "r")
    assert remembered is not None
    assert (remembered.seq, remembered.duplicate) == (30, True)
    assert forgotten is not None
    assert (forgotten.seq, forgotten.duplicate) == (0, True)
    assert window.seen("c", 4, "r") is None


# -- rule: replay, then live ----------------------------------------------------------------------


def test_the_seam_between_replay_and_live_loses_and_repeats_nothing() -> None:
    sub = Subscription()
    # Live frames arrive while the join reads the history: held back.
    assert sub.admit(5, "m5") is False
    assert sub.admit(6, "m6") is False
    # The history read overlaps them (4 and 5), and the buffer goes on past it (6).
    assert sub.start(2, [(3, "m3"), (4, "m4"), (5, "m5")]) == ["m3", "m4", "m5", "m6"]
    assert sub.admit(6, "m6") is False  # already sent
    assert sub.admit(7, "m7") is True
    assert sub.last == 7


def test_a_live_join_sends_only_what_comes_after_it() -> None:
    sub = Subscription()
    assert sub.start(10, []) == []
    assert [sub.admit(seq, f"m{seq}") for seq in (9, 10, 11)] == [False, False, True]


# -- the client's state ---------------------------------------------------------------------------


def frames(texts: list[str]) -> list[dict[str, Any]]:
    return [json.loads(t) for t in texts]


def msg(
    room: str, seq: int, epoch: str = "e1", *, sender: str = "x", msg_id: int | None = None
) -> str:
    return json.dumps({"type": "msg", "room": room, "seq": seq, "epoch": epoch, "from": sender,
                       "name": "", "id": msg_id, "data": seq, "ts_ns": 0})  # fmt: skip


def joined(room: str, last: int, epoch: str = "e1", gap: dict[str, Any] | None = None) -> str:
    return json.dumps({"type": "joined", "room": room, "epoch": epoch, "last": last, "gap": gap})


def welcome(name: str = "bob", session: str = "s1", resumed: bool = False, last_id: int = 0) -> str:
    return json.dumps({"type": "welcome", "id": "c1", "epoch": "e1", "server_time_ns": 1,
                       "name": name, "session": session, "resumed": resumed,
                       "last_id": last_id, "grant": None})  # fmt: skip


def test_connecting_says_hello_then_rejoins_every_room_and_the_inbox_from_where_it_stands() -> None:
    client = ClientState("c1", name="bob", kind="agent")
    assert frames(client.connected(now=0)) == [
        {"type": "hello", "id": "c1", "name": "bob", "kind": "agent"}  # a new session
    ]
    client.receive(welcome())
    assert (client.identity, client.session) == ("bob", "s1")
    assert client.join("news") is not None
    assert client.join("news") is None  # followed already
    assert json.loads(client.join("log", replay=True) or "") == {
        "type": "join", "room": "log", "since": 0, "epoch": None}  # fmt: skip
    client.receive(joined("news", 4))
    client.receive(msg("news", 5))
    client.receive(joined("@bob", 2))  # the hub joined the inbox for it
    client.receive(msg("@bob", 3))
    assert frames(client.connected(now=0)) == [
        {"type": "hello", "id": "c1", "name": "bob", "kind": "agent", "session": "s1"},
        {"type": "join", "room": "news", "since": 5, "epoch": "e1"},
        {"type": "join", "room": "log", "since": 0, "epoch": None},
        {"type": "join", "room": "@bob", "since": 3, "epoch": "e1"},
    ]


def test_a_resumed_welcome_acknowledges_what_the_hub_already_has() -> None:
    client = ClientState("c1")
    for i in range(5):
        client.publish("r", i, now=0)
    client.receive(welcome(resumed=True, last_id=3))
    assert [p.id for p in client.outbox] == [4, 5]
    client.receive(welcome(resumed=False, last_id=0))
    assert [p.id for p in client.outbox] == [4, 5]  # a new session: everything is news


def test_a_refused_publication_leaves_the_outbox_and_a_refused_join_the_rooms() -> None:
    client = ClientState("c1")
    client.publish("r", 1, now=0)
    client.publish("control:x", 2, now=0)
    client.join("@alice")
    error = {"type": "error", "code": "forbidden", "message": "no", "room": "control:x", "id": 2}
    refusal = client.receive(json.dumps(error))
    assert refusal == Refusal("forbidden", "no", "control:x", 2)
    assert [p.id for p in client.outbox] == [1]
    refusal = client.receive(json.dumps({"type": "error", "code": "forbidden",
                                         "message": "only alice", "room": "@alice"}))  # fmt: skip
    assert refusal == Refusal("forbidden", "only alice", "@alice", None)
    assert "@alice" not in client.rooms


def test_the_same_publish_id_from_two_sessions_of_one_identity_is_two_messages() -> None:
    client = ClientState("reader")
    client.join("r", replay=True)
    client.receive(joined("r", 0))
    first = {"type": "msg", "room": "r", "epoch": "e1", "from": "bob", "name": "bob", "id": 1,
             "data": "a", "ts_ns": 0}  # fmt: skip
    assert client.receive(json.dumps({**first, "seq": 1, "session": "s1"})) is not None
    assert client.receive(json.dumps({**first, "seq": 2, "session": "s2"})) is not None
    # After a hub restart (a new epoch) the same session's re-send is recognised.
    client.receive(joined("r", 0, epoch="e2", gap={"reason": "epoch", "old_epoch": "e1"}))
    resend = {**first, "seq": 1, "epoch": "e2", "session": "s2"}
    assert client.receive(json.dumps(resend)) is None


def test_the_outbox_is_re_sent_in_order_until_acknowledged_and_ttl_drops_stale() -> None:
    client = ClientState("c1", ttl=5)
    sent = [client.publish("r", i, now=float(i)) for i in range(4)]
    assert [p.id for p in sent if p] == [1, 2, 3, 4]
    assert json.loads(sent[0].frame if sent[0] else "") == {
        "type": "publish", "room": "r", "id": 1, "data": 0}  # fmt: skip
    client.receive(json.dumps({"type": "ack", "id": 2, "room": "r", "seq": 2, "duplicate": False}))
    assert [p.id for p in client.outbox] == [3, 4]
    client.connected(now=7.5)  # id 3, queued at 2, is 5.5 s old; id 4 is 4.5 s old
    assert client.dropped == 1
    resent = []
    after = 0
    while (pending := client.unsent(after)) is not None:
        resent.append(pending.id)
        after = pending.id
        if pending.id == 4:
            client.publish("r", "meanwhile", now=9)  # queued during the re-send: sent too
    assert resent == [4, 5]


@pytest.mark.parametrize(
    ("overflow", "kept", "returned"),
    [("drop_oldest", [3, 4, 5], 5), ("drop_newest", [1, 2, 3], None)],
)
def test_a_full_outbox_drops_by_policy(
    overflow: Any, kept: list[int], returned: int | None
) -> None:
    client = ClientState("c1", outbox_limit=3, overflow=overflow)
    results = [client.publish("r", i, now=0) for i in range(5)]
    assert [p.id for p in client.outbox] == kept
    assert (results[-1].id if results[-1] else None) == returned
    assert client.dropped == 2


def test_a_full_outbox_raises_by_default_and_bad_settings_are_refused() -> None:
    client = ClientState("c1", outbox_limit=1)
    client.publish("r", 0, now=0)
    with pytest.raises(OverflowError, match="outbox full"):
        client.publish("r", 1, now=0)
    with pytest.raises(ValueError, match="overflow"):
        ClientState("c1", overflow="explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="outbox_limit"):
        ClientState("c1", outbox_limit=0)


def test_messages_already_received_are_dropped() -> None:
    client = ClientState("c1")
    client.join("r")
    client.receive(joined("r", 3))
    got = [client.receive(msg("r", seq)) for seq in (2, 3, 4, 4, 5)]
    assert [m.seq if isinstance(m, Message) else None for m in got] == [None, None, 4, None, 5]
    assert client.receive(msg("unknown", 1)) is None


def test_a_publication_seen_before_a_hub_restart_is_not_news_again() -> None:
    client = ClientState("c1")
    client.join("r", replay=True)
    client.receive(joined("r", 0))
    assert isinstance(client.receive(msg("r", 1, sender="p", msg_id=9)), Message)
    # The hub restarted; the publisher re-sent id 9, which the new epoch numbers 1 again.
    client.receive(joined("r", 1, "e2", {"reason": "epoch", "old_epoch": "e1"}))
    assert client.receive(msg("r", 1, "e2", sender="p", msg_id=9)) is None
    assert isinstance(client.receive(msg("r", 2, "e2", sender="p", msg_id=10)), Message)


def test_a_new_epoch_is_a_gap_and_the_new_history_is_all_news() -> None:
    client = ClientState("c1")
    client.join("r")
    client.receive(joined("r", 3))
    client.receive(msg("r", 4))
    assert json.loads(client.connected(now=0)[1]) == {
        "type": "join", "room": "r", "since": 4, "epoch": "e1"}  # fmt: skip
    gap = client.receive(joined("r", 1, "e2", {"reason": "epoch", "old_epoch": "e1"}))
    assert gap == Gap("r", "epoch", "e2", old_epoch="e1")
    assert client.gaps == 1
    first = client.receive(msg("r", 1, "e2"))
    assert isinstance(first, Message)
    assert first.seq == 1


def test_a_trimmed_gap_bounds_what_was_lost() -> None:
    client = ClientState("c1")
    client.join("r", replay=True)
    gap = client.receive(joined("r", 13, gap={"reason": "trimmed", "lost_from": 3, "lost_to": 8}))
    assert gap == Gap("r", "trimmed", "e1", None, 3, 8)
    assert client.rooms["r"].last == 0  # the replay that follows is all news


def test_a_gap_holds_only_what_means_something() -> None:
    assert [f.name for f in fields(Gap)] == [
        "room", "reason", "epoch", "old_epoch", "lost_from", "lost_to"]  # fmt: skip
    gap = Gap("r", "epoch", "e2", "e1")
    assert gap.gap is True
    assert Message("r", 1, "e", None, "x", "", None, 0).gap is False
    assert not hasattr(gap, "seq")
    assert not hasattr(gap, "data")


def test_welcome_and_other_frames_come_back_to_the_shell() -> None:
    client = ClientState("c1")
    welcome = client.receive(json.dumps({"type": "welcome", "id": "c1", "epoch": "e7",
                                         "server_time_ns": 1}))  # fmt: skip
    assert welcome == Welcome("c1", "e7", 1)
    assert client.hub_epoch == "e7"
    assert client.receive('{"type": "pong", "t": 0.25}') == Pong(0.25)
    assert client.receive('{"type": "left", "room": "r"}') == Left("r")
    with pytest.raises(HubFrameError) as caught:
        client.receive('{"type": "something-new"}')
    assert caught.value.code == "unknown_type"


# -- both ends together ---------------------------------------------------------------------------


class Link:
    """A client state and a hub state joined by a pure pump (no sockets, no clock)."""

    def __init__(self, hub: HubState, client: ClientState) -> None:
        self.hub = hub
        self.client = client
        self.delivered: list[Message | Gap] = []

    def send(self, texts: list[str]) -> None:
        for text in texts:
            frame = decode_client_frame(text)
            replies: list[str] = []
            if isinstance(frame, Publish):
                pub = Publication(frame.room, self.client.id, "", frame.id, frame.data)
                appended, _, _ = self.hub.append(pub, 0)
                replies.append(
                    encode(Ack(frame.id, appended.room, appended.seq, appended.duplicate))
                )
            elif isinstance(frame, Join):
                replay = self.hub.join(frame)
                replies += [
                    encode(replay.joined),
                    *(t for s, t in replay.entries if s > replay.since),
                ]
            for reply in replies:
                item = self.client.receive(reply)
                if isinstance(item, Message | Gap):
                    self.delivered.append(item)

    def connect(self) -> None:
        self.send(self.client.connected(now=0))
        after = 0
        while (pending := self.client.unsent(after)) is not None:
            self.send([pending.frame])
            after = pending.id


def test_a_client_and_a_hub_agree_through_a_reconnect_and_a_restart() -> None:
    client = ClientState("c1")
    link = Link(HubState("e1"), client)
    client.join("r", replay=True)
    link.connect()
    link.send([p.frame for p in (client.publish("r", i, now=0) for i in range(3)) if p])
    # The pump carries no live fan-out: a reconnect replays what the client has not seen.
    assert link.delivered == []
    link.connect()
    assert [m.data for m in link.delivered if isinstance(m, Message)] == [0, 1, 2]
    assert not client.outbox
    # A reconnect to the same hub replays nothing new and re-sends nothing.
    link.connect()
    assert len(link.delivered) == 3
    # The hub restarts (a new epoch): the client is told, then gets the new history.
    client.publish("r", "queued while down", now=0)
    link.hub = HubState("e2")
    link.connect()  # join (with the old epoch) is answered before the re-sent publish lands
    link.connect()
    gaps = [g for g in link.delivered if isinstance(g, Gap)]
    assert gaps == [Gap("r", "epoch", "e2", old_epoch="e1")]
    assert [m.data for m in link.delivered if isinstance(m, Message)][-1] == "queued while down"
