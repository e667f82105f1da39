"""The history checker of the fault suite: invariants at every prefix and per-key order.

Pure: it takes what the run recorded and returns violations, so its own tests can hand it
histories with a known defect (tests/unit/reliability/test_history.py).

- `produced`: each service's outbox rows in id order. Rows are inserted under the locks of the
  seminar, the Kommune and the period they touch, so for every invariant below the id order is the
  order in which the conflicting transactions committed.
- `delivered`: a topic's records in log order per partition, copies included.

Checked:
- seats: a seminar's accepted registrations never exceed the largest capacity published for it
  (a smaller capacity never takes a seat away, ADR 0002, so the largest one is the bound);
- quota and budget: a Kommune's funded places never exceed the quota, a period's committed money
  never exceeds its budget;
- per-key order: for each key and registration (or email), the first copy of each event on a
  topic comes in the order its rows were produced (a republished copy may come later; it is a
  duplicate, not an inversion);
- the final funding state against the pure domain's (`final_state_differences`): the model
  replays funding's inputs one by one in the order the system claimed them (tests/reliability/model.py);
- what counts as a registration's first decision (`first_decisions`), of which chaos.py requires
  exactly one per accepted registration.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Produced:
    """One outbox row: its id (the production order), key and event."""

    sequence: int
    key: str
    event: Mapping[str, Any]

    @property
    def event_id(self) -> str:
        return str(self.event["event_id"])

    @property
    def event_type(self) -> str:
        return str(self.event["event_type"])

    @property
    def data(self) -> Mapping[str, Any]:
        data: Mapping[str, Any] = self.event["data"]
        return data


@dataclass(frozen=True)
class Violation:
    kind: str  # "seats", "quota", "budget", "order", "first decision"
    detail: str


def seat_violations(
    registration_outbox: Iterable[Produced], capacities: Mapping[str, int]
) -> list[Violation]:
    """Seats taken per seminar at every prefix of registration's outbox."""
    found: list[Violation] = []
    seated: set[str] = set()
    taken: Counter[str] = Counter()
    for row in sorted(registration_outbox, key=lambda r: r.sequence):
        if row.event_type not in ("registration.accepted", "registration.withdrawn"):
            continue
        rid, seminar = str(row.data["registration_id"]), str(row.data["seminar_id"])
        if row.event_type == "registration.accepted" and rid not in seated:
            seated.add(rid)
            taken[seminar] += 1
            if taken[seminar] > capacities.get(seminar, 0):
                found.append(
                    Violation(
                        "seats", f"{seminar}: {taken[seminar]} seats taken of {capacities.get(seminar, 0)}"
                    )
                )
        elif row.event_type == "registration.withdrawn" and rid in seated:
            seated.discard(rid)
            taken[seminar] -= 1
    return found


def funding_violations(
    funding_outbox: Iterable[Produced], *, quota: int, budgets: Mapping[str, int | None]
) -> list[Violation]:
    """A Kommune's funded places and a period's committed money at every prefix of funding's outbox."""
    found: list[Violation] = []
    funded_places: Counter[str] = Counter()
    committed: Counter[str] = Counter()
    for row in sorted(funding_outbox, key=lambda r: r.sequence):
        sign = {"funding.approved": 1, "funding.released": -1}.get(row.event_type, 0)
        if not sign:
            continue
        period, kommune = row.data["period_id"], row.data["kommune_key"]
        committed[period] += sign * row.data["amount_cents"]
        funded_places[kommune] += sign
        budget = budgets.get(period)
        if budget is not None and committed[period] > budget:
            found.append(Violation("budget", f"period {period}: {committed[period]} committed of {budget}"))
        if funded_places[kommune] > quota:
            found.append(Violation("quota", f"{kommune}: {funded_places[kommune]} funded places of {quota}"))
    return found


def entity_of(event: Mapping[str, Any]) -> str:
    """What a topic orders: the events of one registration (and of one email on
    notification.events) are produced one after another, each under the row lock of the one
    before, so they must arrive in that order. Events of different registrations of a Kommune
    come from independent transactions: their order is the relay's, and nothing relies on it."""
    data = event.get("data") or {}
    return str(data.get("notification_id") or data.get("registration_id") or "")


def order_violations(
    topic: str, produced: Iterable[Produced], delivered: Iterable[Mapping[str, Any]]
) -> list[Violation]:
    """Per key and registration (or email), the first copies on the topic come in production order."""
    position = {row.event_id: ((row.key, entity_of(row.event)), row.sequence) for row in produced}
    last_seen: dict[tuple[str, str], tuple[int, str]] = {}
    seen: set[str] = set()
    found: list[Violation] = []
    for event in delivered:
        event_id = str(event["event_id"])
        if event_id in seen or event_id not in position:
            continue
        seen.add(event_id)
        key, sequence = position[event_id]
        previous = last_seen.get(key)
        if previous is not None and previous[0] > sequence:
            found.append(
                Violation(
                    "order",
                    f"{topic} key {key[0]}, {key[1]}: {event_id} (row {sequence}) after {previous[1]} "
                    f"(row {previous[0]})",
                )
            )
        else:
            last_seen[key] = (sequence, event_id)
    return found


def first_decisions(history: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The decisions of one registration (distinct, in log order) that decide it the first time.

    A promotion, a release, a decline at closing and the move from the quota waitlist to the money
    waitlist (ADR 0006) follow a first decision; they are not one.
    """
    firsts: list[Mapping[str, Any]] = []
    waited_for_quota = False
    for event in {e["event_id"]: e for e in history}.values():
        kind, data = event["event_type"], event["data"]
        if kind == "funding.approved" and not data["promoted"]:
            firsts.append(event)
        elif kind == "funding.waitlisted":
            if not (data["reason"] == "budget_exhausted" and waited_for_quota):
                firsts.append(event)
            waited_for_quota = waited_for_quota or data["reason"] == "quota_exhausted"
        elif kind == "funding.declined" and data["reason"] != "period_closed":
            firsts.append(event)
    return firsts


@dataclass(frozen=True)
class FundingOutcome:
    """A registration's funding as the final state holds it; `rank` orders a waitlist (from 1)."""

    status: str
    period_id: str | None
    reason: str | None
    amount_cents: int | None
    kommune_key: str = ""
    rank: int | None = None


def waitlist_of(outcome: FundingOutcome) -> tuple[str | None, str | None, str]:
    """Which waitlist an entry is on: a period's money waitlist is one for all Kommunen, the quota
    waitlist is one per Kommune (a place freed in one Kommune goes to its own next in line).
    Entries of different Kommunen on their quota waitlists have no order between them."""
    kommune = outcome.kommune_key if outcome.reason == "quota_exhausted" else ""
    return (outcome.period_id, outcome.reason, kommune)


def ranked(rows: list[tuple[str, FundingOutcome, int | None]]) -> dict[str, FundingOutcome]:
    """Outcomes by registration, each waitlisted one with its rank on its waitlist (sequence
    numbers differ between the system and the model; their order must not)."""
    outcomes = {rid: outcome for rid, outcome, _ in rows}
    waiting: dict[tuple[str | None, str | None, str], list[tuple[int, str]]] = defaultdict(list)
    for rid, outcome, sequence in rows:
        if outcome.status == "waitlisted" and sequence is not None:
            waiting[waitlist_of(outcome)].append((sequence, rid))
    for entries in waiting.values():
        for rank, (_, rid) in enumerate(sorted(entries), start=1):
            outcomes[rid] = replace(outcomes[rid], rank=rank)
    return outcomes


def final_state_differences(
    system: Mapping[str, FundingOutcome], model: Mapping[str, FundingOutcome]
) -> list[Violation]:
    """Every registration whose final funding differs between the system and the model, and the
    money committed per period."""
    found = differences("funding of", system, model)
    committed = {"system": Counter[str](), "model": Counter[str]()}
    for name, outcomes in (("system", system), ("model", model)):
        for outcome in outcomes.values():
            if outcome.status == "approved" and outcome.period_id is not None:
                committed[name][outcome.period_id] += outcome.amount_cents or 0
    return found + differences("money committed in period", committed["system"], committed["model"])


@dataclass(frozen=True)
class RegistrationOutcome:
    """A registration as registration's final state holds it; `rank` orders a seminar's waitlist."""

    status: str
    seminar_id: str
    reason: str | None
    rank: int | None = None


def ranked_registrations(
    rows: list[tuple[str, RegistrationOutcome, int | None]],
) -> dict[str, RegistrationOutcome]:
    """Outcomes by registration, each waitlisted one with its rank on its seminar's waitlist."""
    outcomes = {rid: outcome for rid, outcome, _ in rows}
    waiting: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for rid, outcome, sequence in rows:
        if outcome.status == "waitlisted" and sequence is not None:
            waiting[outcome.seminar_id].append((sequence, rid))
    for entries in waiting.values():
        for rank, (_, rid) in enumerate(sorted(entries), start=1):
            outcomes[rid] = replace(outcomes[rid], rank=rank)
    return outcomes


def differences(kind: str, system: Mapping[str, object], model: Mapping[str, object]) -> list[Violation]:
    """Every key whose value differs between the system's final state and the model's."""
    return [
        Violation("final state", f"{kind} {key}: system {system.get(key)}, model {model.get(key)}")
        for key in sorted(set(system) | set(model))
        if system.get(key) != model.get(key)
    ]
