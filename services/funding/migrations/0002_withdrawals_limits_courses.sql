-- Issue 18 and 19: withdrawals that arrive before their acceptance, budgets set by an operator,
-- the programme a database belongs to, and the courses and participants of ADR 0014.

-- A withdrawal of a registration funding has no record of yet (a dead letter replayed after the
-- events behind it, reordering): its acceptance, when it comes, is recorded as withdrawn and
-- takes nothing. No personal data.
CREATE TABLE pending_withdrawals (
    registration_id text        PRIMARY KEY,
    kommune_key     text        NOT NULL,
    withdrawn_at    timestamptz NOT NULL DEFAULT now()
);

-- true: an operator set budget_cents (lotse), and a later start keeps it whatever the file says.
ALTER TABLE periods ADD COLUMN budget_set_by_operator boolean NOT NULL DEFAULT false;

-- The programme this database was started with (one row): another programme is refused.
CREATE TABLE funding_program (
    only_row   boolean     PRIMARY KEY DEFAULT true CHECK (only_row),
    program_id text        NOT NULL,
    bound_at   timestamptz NOT NULL DEFAULT now()
);

-- The course; whether it holds a place of the Kommune's quota (a follow-up course may not); the
-- keyed hash of the participant's normalised email (only where the programme checks a
-- prerequisite; never the address itself).
ALTER TABLE fundings
    ADD COLUMN course text NOT NULL DEFAULT 'basic' CHECK (course IN ('basic', 'follow_up')),
    ADD COLUMN takes_place boolean NOT NULL DEFAULT true,
    ADD COLUMN participant_hash text CHECK (participant_hash ~ '^v1:[0-9a-f]{64}$');

-- An acceptance that came after its withdrawal is recorded as withdrawn without a period or
-- amount; the new decline reasons. The old CHECKs were unnamed, so they are found by their text.
DO $$
DECLARE
    name text;
BEGIN
    FOR name IN
        SELECT conname FROM pg_constraint
        WHERE conrelid = 'fundings'::regclass AND contype = 'c'
          AND (pg_get_constraintdef(oid) LIKE '%period_id IS NOT NULL%'
               OR pg_get_constraintdef(oid) LIKE '%unknown_kommune%')
    LOOP
        EXECUTE format('ALTER TABLE fundings DROP CONSTRAINT %I', name);
    END LOOP;
END
$$;

ALTER TABLE fundings
    ADD CONSTRAINT holds_period_and_amount CHECK (
        status = 'declined'
        OR (status = 'withdrawn' AND reason = 'withdrawn_before_acceptance')
        OR (period_id IS NOT NULL AND amount_cents IS NOT NULL)),
    ADD CONSTRAINT decline_reasons CHECK (status <> 'declined' OR reason IN (
        'unknown_kommune', 'kommune_not_eligible', 'outside_funding_period', 'period_closed',
        'prerequisite_missing', 'registered_after_start', 'course_not_funded'));

-- The prerequisite check: a participant's approved basic courses.
CREATE INDEX fundings_funded_basic ON fundings (participant_hash)
    WHERE status = 'approved' AND course = 'basic' AND participant_hash IS NOT NULL;
