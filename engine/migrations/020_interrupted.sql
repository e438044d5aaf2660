-- A delivery taken over from a runner that stopped while it held the lease (killed, crashed,
-- lost its database) may already have reached the receiver: the runner can have sent it and
-- died before recording the reply. If such a delivery then ends failed (expired while the
-- receiver kept refusing, a later hard reply, cancelled), "failed" may not be the whole truth.
-- The flag is set where the take-over happens (the claim, the expiry in the database) and is
-- shown as 「届いている可能性あり」 next to the failure.
ALTER TABLE deliveries ADD COLUMN interrupted boolean NOT NULL DEFAULT false;
