-- When a camera system asked to slow down (429, or 503 with Retry-After), until when nothing is sent to it. Kept
-- here rather than in one daemon's memory so that every daemon sharing this database pauses the system, not only
-- the one that was told.
CREATE TABLE system_holds (
    system   TEXT   PRIMARY KEY,
    until_ms BIGINT NOT NULL
);
