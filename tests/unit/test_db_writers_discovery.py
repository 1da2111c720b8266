"""The db drill writers' discovery (the page's rule): a node that did not answer is skipped
for a while by every writer, then asked by one writer while the others still skip it."""

from __future__ import annotations

import pymysql
import pytest

from tasks.drill import db_writers
from tasks.drill.db_writers import Discovery, NoPrimary

DEAD, READ_ONLY_NODE = ("10.5.1.211", 3306), ("10.5.1.212", 3306)


class FakeLink:
    def __init__(self, read_only: int, insert_error: Exception | None = None) -> None:
        self.read_only, self.insert_error = read_only, insert_error

    def cursor(self) -> FakeLink:
        return self

    def __enter__(self) -> FakeLink:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def execute(self, sql: str, args: object = None) -> None:
        if sql.startswith("INSERT") and self.insert_error is not None:
            raise self.insert_error

    def fetchone(self) -> tuple[int]:
        return (self.read_only,)

    def close(self) -> None:
        return None


@pytest.fixture
def tier(monkeypatch: pytest.MonkeyPatch) -> tuple[Discovery, list[tuple[str, int]], dict]:
    """A discovery over a node that never answers and a read-only one; the nodes asked."""
    asked: list[tuple[str, int]] = []
    behaviour = {DEAD: pymysql.err.OperationalError(2003, "timed out"),
                 READ_ONLY_NODE: FakeLink(1)}

    def connect(node: tuple[str, int]) -> FakeLink:
        asked.append(node)
        outcome = behaviour[node]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    disc = Discovery([DEAD, READ_ONLY_NODE], "app", "x", "app")
    monkeypatch.setattr(disc, "connect", connect)
    return disc, asked, behaviour


def test_a_node_that_did_not_answer_is_skipped_then_asked_by_one_writer(
    tier: tuple[Discovery, list[tuple[str, int]], dict], monkeypatch: pytest.MonkeyPatch,
) -> None:
    disc, asked, _ = tier
    with pytest.raises(NoPrimary):
        disc.discover()
    assert asked == [DEAD, READ_ONLY_NODE]
    asked.clear()
    with pytest.raises(NoPrimary, match="10.5.1.211: skipped"):
        disc.discover()
    assert asked == [READ_ONLY_NODE]  # the dead node was not waited for again
    # Its time is over: the next writer asks it, and marks it again for the others.
    disc.suspects[DEAD] -= db_writers.SUSPECT_TTL
    assert disc.skip_suspect(DEAD) is False
    assert disc.skip_suspect(DEAD) is True


def test_a_refusal_is_an_answer_and_an_answer_clears_the_suspicion(
    tier: tuple[Discovery, list[tuple[str, int]], dict],
) -> None:
    disc, asked, behaviour = tier
    behaviour[DEAD] = pymysql.err.OperationalError(1045, "Access denied")
    with pytest.raises(NoPrimary):
        disc.discover()
    assert DEAD not in disc.suspects
    behaviour[DEAD] = pymysql.err.OperationalError(2013, "Lost connection during handshake")
    with pytest.raises(NoPrimary):
        disc.discover()
    assert DEAD in disc.suspects
    disc.suspects[DEAD] -= db_writers.SUSPECT_TTL
    behaviour[DEAD] = FakeLink(0)  # back, and the primary
    link, address = disc.discover()
    assert address == DEAD[0] and DEAD not in disc.suspects and disc.cached == DEAD


def test_a_remembered_primary_that_does_not_answer_is_forgotten_and_suspect(
    tier: tuple[Discovery, list[tuple[str, int]], dict],
) -> None:
    disc, asked, _ = tier
    disc.remember(DEAD)
    with pytest.raises(NoPrimary):
        disc.primary_link()
    assert asked == [DEAD, READ_ONLY_NODE]  # the cached try only: discovery skipped it
    assert disc.cached is None and DEAD in disc.suspects


def test_a_write_that_timed_out_leaves_its_node_unsuspected(
    tier: tuple[Discovery, list[tuple[str, int]], dict],
) -> None:
    """A primary whose commits wait for a replica's acknowledgement answers: its writes time
    out (outcome unknown), and the next write asks it again rather than failing at once."""
    disc, asked, behaviour = tier
    behaviour[DEAD] = FakeLink(0, pymysql.err.OperationalError(2013, "Lost connection"))
    outcome, address, _ = db_writers.write_one(disc, "run-w0-1", "10.5.1.11")
    assert (outcome, address) == ("info", DEAD[0])
    assert DEAD not in disc.suspects
    asked.clear()
    assert db_writers.write_one(disc, "run-w0-2", "10.5.1.11")[0] == "info"
    assert asked == [DEAD]  # asked again, not skipped
