-- sshca schema, version 6: local users (sshca user add), people without an
-- identity provider who get certificates at the SSH front door with one of
-- their registered keys. A key belongs to one user at most.

CREATE TABLE local_users (
	name TEXT PRIMARY KEY,
	groups_json TEXT NOT NULL,
	created_by TEXT NOT NULL,
	created_us BIGINT NOT NULL
);

CREATE TABLE local_user_keys (
	fingerprint TEXT PRIMARY KEY,
	name TEXT NOT NULL,
	public_key TEXT NOT NULL,
	added_us BIGINT NOT NULL
);

CREATE INDEX local_user_keys_name ON local_user_keys (name);
