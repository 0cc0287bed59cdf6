-- The events of one transaction (`txn=` on the list and the API): a void, the sale it undoes and the refund of
-- it share a transaction number, and the event page links to all of them. Without an index that filter walks
-- every event of the time index to fill a page of three; events without a transaction are left out of it.
CREATE INDEX events_txn_at ON events (txn, at_ms DESC) WHERE txn IS NOT NULL;
