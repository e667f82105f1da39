-- What the letters of a registration need beyond its first letter: the course (the funding
-- letters word the amount of its course), the seminar's location (its calendar entry), and
-- whether a seat was confirmed (only then does a withdrawal carry a calendar cancellation).
-- NULL for registrations stored before: their acceptance carried no calendar entry either.
ALTER TABLE registrations
    ADD COLUMN course text,
    ADD COLUMN seminar_location text,
    ADD COLUMN seat_confirmed boolean;
