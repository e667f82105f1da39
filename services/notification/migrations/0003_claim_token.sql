-- Which claim holds an email's lease. A sender records a failure or hands an email back only under
-- its own claim: if its lease ran out and another sender claimed the email meanwhile, a late
-- outcome must not make that live claim due again or park it.
ALTER TABLE emails ADD COLUMN claim_token uuid;
