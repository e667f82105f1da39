-- How many entries wait for money in each period, kept by triggers (ADR 0025): a new entry's
-- position is this count plus one, read from the period row the batch holds anyway, instead of
-- counting the waitlist. Every change of a waitlisted entry happens under its period's lock, so the
-- count is exact; a change that does not move an entry into or out of a money waitlist (an
-- erasure, an approval) leaves the period row alone.

ALTER TABLE periods ADD COLUMN money_waiting integer NOT NULL DEFAULT 0 CHECK (money_waiting >= 0);

UPDATE periods SET money_waiting = waiting.n
FROM (
    SELECT period_id, count(*) AS n FROM fundings
    WHERE status = 'waitlisted' AND reason = 'budget_exhausted'
    GROUP BY period_id
) AS waiting
WHERE periods.period_id = waiting.period_id;

-- Inserts come a batch per statement: counted per statement, one period update per period.
CREATE FUNCTION count_money_waiting_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE periods SET money_waiting = periods.money_waiting + inserted.n
    FROM (
        SELECT period_id, count(*) AS n FROM new_fundings
        WHERE status = 'waitlisted' AND reason = 'budget_exhausted'
        GROUP BY period_id
    ) AS inserted
    WHERE periods.period_id = inserted.period_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER fundings_money_waiting_inserted AFTER INSERT ON fundings
    REFERENCING NEW TABLE AS new_fundings
    FOR EACH STATEMENT EXECUTE FUNCTION count_money_waiting_inserted();

-- Changes come one record per statement: counted per row, and only rows that move.
CREATE FUNCTION count_money_waiting_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.status = 'waitlisted' AND OLD.reason = 'budget_exhausted' THEN
        UPDATE periods SET money_waiting = money_waiting - 1 WHERE period_id = OLD.period_id;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.status = 'waitlisted' AND NEW.reason = 'budget_exhausted' THEN
        UPDATE periods SET money_waiting = money_waiting + 1 WHERE period_id = NEW.period_id;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER fundings_money_waiting_changed AFTER UPDATE ON fundings
    FOR EACH ROW
    WHEN ((OLD.status = 'waitlisted' AND OLD.reason = 'budget_exhausted')
          IS DISTINCT FROM (NEW.status = 'waitlisted' AND NEW.reason = 'budget_exhausted')
          OR (OLD.status = 'waitlisted' AND OLD.reason = 'budget_exhausted'
              AND OLD.period_id IS DISTINCT FROM NEW.period_id))
    EXECUTE FUNCTION count_money_waiting_changed();
CREATE TRIGGER fundings_money_waiting_deleted AFTER DELETE ON fundings
    FOR EACH ROW WHEN (OLD.status = 'waitlisted' AND OLD.reason = 'budget_exhausted')
    EXECUTE FUNCTION count_money_waiting_changed();
