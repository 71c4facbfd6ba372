-- handrail 0005: a random token per claim, checked with the fencing epoch. A claim is
-- committed without waiting for its WAL flush; a server crash may forget it while its
-- holder lives on, and the next claim may repeat its epoch (even for the same worker): the
-- token tells the two leases apart, so the forgotten one can write no more.
ALTER TABLE handrail_tasks ADD COLUMN lease_token text;
