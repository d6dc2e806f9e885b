-- sshca schema, version 3 (issuance throughput): serials come from a counter from which each
-- replica reserves blocks (store.ReserveSerials), so that a batch of
-- certificates can be signed before the one transaction that records them.
-- The counter starts above every serial the identity column handed out, and
-- certificates are then inserted with their reserved serial.

CREATE TABLE serial_counter (
	id INT PRIMARY KEY CHECK (id = 1),
	next BIGINT NOT NULL
);

INSERT INTO serial_counter (id, next)
SELECT 1, GREATEST(
	COALESCE((SELECT MAX(serial) FROM certs), 0),
	COALESCE((SELECT last_value FROM pg_sequences WHERE schemaname = current_schema() AND sequencename = 'certs_serial_seq'), 0)
) + 1;

ALTER TABLE certs ALTER COLUMN serial DROP IDENTITY IF EXISTS;

-- Nothing looks certificates up by subject fingerprint, and an index on a
-- random hash costs a random page write per certificate.
DROP INDEX IF EXISTS certs_subject_fp;
