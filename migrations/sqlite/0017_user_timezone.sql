-- The zone a person reads times in where no store names one (the audit log, the integrations and dead-letter
-- pages, the footer, the list across stores in different zones): an IANA name they chose on their account
-- page, or NULL for their stores' common zone.
ALTER TABLE users ADD COLUMN timezone TEXT;
