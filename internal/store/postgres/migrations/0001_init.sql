-- sshca schema, version 1. Same tables and columns as the SQLite schema:
-- integers are BIGINT (times in Unix seconds or microseconds), text is TEXT.
-- Applied by postgres.Open in one transaction under an advisory lock.

CREATE TABLE certs (
	-- Serials come from an identity sequence: never reused, gaps are fine
	-- (a rolled-back issuance burns its number).
	serial BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	ca_type TEXT NOT NULL,
	ca_fp TEXT NOT NULL,
	role TEXT NOT NULL,
	key_id TEXT NOT NULL,
	principals TEXT NOT NULL,
	valid_after BIGINT NOT NULL,
	valid_before BIGINT NOT NULL,
	subject_fp TEXT NOT NULL,
	subject_type TEXT NOT NULL,
	requester TEXT NOT NULL,
	issued_us BIGINT NOT NULL,
	cert TEXT NOT NULL DEFAULT ''
);
CREATE INDEX certs_key_id ON certs (key_id);
CREATE INDEX certs_valid_before ON certs (valid_before);
CREATE INDEX certs_subject_fp ON certs (subject_fp);

CREATE TABLE ca_keys (
	ca_type TEXT NOT NULL,
	generation BIGINT NOT NULL,
	state TEXT NOT NULL,
	key_type TEXT NOT NULL,
	fingerprint TEXT NOT NULL,
	public_key TEXT NOT NULL,
	signer TEXT NOT NULL,
	file TEXT NOT NULL,
	created_us BIGINT NOT NULL,
	updated_us BIGINT NOT NULL,
	PRIMARY KEY (ca_type, generation)
);

CREATE TABLE revocations (
	id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	ca_type TEXT NOT NULL,
	kind TEXT NOT NULL,
	lo BIGINT NOT NULL,
	hi BIGINT NOT NULL,
	key_id TEXT NOT NULL,
	value TEXT NOT NULL,
	reason TEXT NOT NULL,
	actor TEXT NOT NULL,
	created_us BIGINT NOT NULL,
	expires_us BIGINT NOT NULL,
	UNIQUE (ca_type, kind, lo, hi, key_id, value)
);

CREATE TABLE krl_versions (ca_type TEXT PRIMARY KEY, version BIGINT NOT NULL);

CREATE TABLE audit (
	seq BIGINT PRIMARY KEY,
	time_us BIGINT NOT NULL,
	actor TEXT NOT NULL,
	action TEXT NOT NULL,
	role TEXT NOT NULL,
	serial BIGINT NOT NULL,
	key_id TEXT NOT NULL,
	outcome TEXT NOT NULL,
	reason TEXT NOT NULL,
	details TEXT NOT NULL,
	prev_hash TEXT NOT NULL,
	hash TEXT NOT NULL
);
CREATE INDEX audit_serial ON audit (serial);

-- The head row exists from the start (seq 0 = empty log, hash = the audit
-- genesis hash) so every writer has a row to lock with SELECT ... FOR UPDATE.
CREATE TABLE audit_head (id BIGINT PRIMARY KEY CHECK (id = 1), seq BIGINT NOT NULL, hash TEXT NOT NULL);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
