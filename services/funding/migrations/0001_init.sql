-- The funding service's state: the money of each period, the places of each Kommune, and one
-- funding record per decided registration. The counters are changed only by conditional updates
-- (see store.py); the CHECK constraints below refuse any change that breaks an invariant anyway.

CREATE TABLE periods (
    period_id      text        PRIMARY KEY,
    starts_on      date        NOT NULL,
    ends_on        date        NOT NULL CHECK (ends_on >= starts_on),
    -- NULL: unlimited.
    budget_cents   bigint      CHECK (budget_cents >= 0),
    approved_cents bigint      NOT NULL DEFAULT 0 CHECK (approved_cents >= 0),
    released_cents bigint      NOT NULL DEFAULT 0 CHECK (released_cents >= 0),
    closed_at      timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT released_within_approved CHECK (released_cents <= approved_cents),
    -- Approved minus released never exceeds the budget.
    CONSTRAINT within_budget CHECK (budget_cents IS NULL OR approved_cents - released_cents <= budget_cents)
);

-- One row per eligible Kommune, written at startup from the programme and the directory.
CREATE TABLE quotas (
    kommune_key text        PRIMARY KEY,
    places      integer     NOT NULL CHECK (places >= 0),
    -- Approved registrations the Kommune holds now (a release gives the place back).
    held        integer     NOT NULL DEFAULT 0 CHECK (held >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT within_quota CHECK (held <= places)
);

-- Order of arrival on the waitlists; positions and promotion order follow it.
CREATE SEQUENCE funding_waitlist_order;

CREATE TABLE fundings (
    registration_id   text        PRIMARY KEY,
    kommune_key       text        NOT NULL,
    seminar_id        text        NOT NULL,
    seminar_starts_on date        NOT NULL,
    fee_cents         bigint      NOT NULL CHECK (fee_cents >= 0),
    status            text        NOT NULL
        CHECK (status IN ('approved', 'waitlisted', 'declined', 'released', 'withdrawn')),
    period_id         text        REFERENCES periods (period_id),
    -- The waitlist or decline reason.
    reason            text,
    amount_cents      bigint      CHECK (amount_cents >= 0),
    waitlist_seq      bigint,
    promoted          boolean     NOT NULL DEFAULT false,
    decided_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'waitlisted') = (waitlist_seq IS NOT NULL)),
    CHECK (status IN ('declined') OR (period_id IS NOT NULL AND amount_cents IS NOT NULL)),
    CHECK (status <> 'waitlisted' OR reason IN ('quota_exhausted', 'budget_exhausted')),
    CHECK (status <> 'declined' OR reason IN (
        'unknown_kommune', 'kommune_not_eligible', 'outside_funding_period', 'period_closed'))
);

CREATE INDEX fundings_by_kommune ON fundings (kommune_key);
CREATE INDEX fundings_waitlists ON fundings (period_id, reason, waitlist_seq) WHERE status = 'waitlisted';
