-- Who this database is. The outbox relay names it in every marker it writes to Kafka, and
-- trusts only markers that name it: another database's relay (a second deployment on the same
-- broker) reuses the same outbox ids for other rows. Drawn once, when the database is created.

CREATE TABLE database_identity (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    id       uuid    NOT NULL DEFAULT gen_random_uuid()
);

INSERT INTO database_identity DEFAULT VALUES;
