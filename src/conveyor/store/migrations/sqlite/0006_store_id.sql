-- A random identity of this database. Command jobs carry it in their environment
-- (CONVEYOR_STORE_ID), so that a worker killing the processes of a lost attempt kills only
-- those of its own database, never another deployment's on the same host.
CREATE TABLE store_info (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT INTO store_info (key, value) VALUES ('store_id', lower(hex(randomblob(16))));
