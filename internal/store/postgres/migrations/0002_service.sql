-- sshca schema, version 2: the certificate service's tokens, TOTP
-- enrollments, renewal challenges, and the fleet's host reports.

CREATE TABLE tokens (
	id TEXT PRIMARY KEY,
	name TEXT NOT NULL UNIQUE,
	kind TEXT NOT NULL,
	roles TEXT NOT NULL,
	principals TEXT NOT NULL,
	hash TEXT NOT NULL,
	created_by TEXT NOT NULL,
	created_us BIGINT NOT NULL,
	expires_us BIGINT NOT NULL,
	revoked_us BIGINT NOT NULL DEFAULT 0,
	used_us BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE totp (
	identity TEXT PRIMARY KEY,
	secret TEXT NOT NULL,
	last_step BIGINT NOT NULL DEFAULT 0,
	created_us BIGINT NOT NULL
);

CREATE TABLE challenges (
	id TEXT PRIMARY KEY,
	expires_us BIGINT NOT NULL
);

CREATE TABLE hosts (
	name TEXT PRIMARY KEY,
	last_seen_us BIGINT NOT NULL,
	krl_version BIGINT NOT NULL,
	ca_keys TEXT NOT NULL,
	cert_expiry_us BIGINT NOT NULL,
	stale BIGINT NOT NULL,
	detail TEXT NOT NULL
);
