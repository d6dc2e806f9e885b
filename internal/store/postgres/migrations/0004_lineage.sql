-- sshca schema, version 4 (one door): who a certificate was issued to and
-- how they authenticated, as JSON (store.Lineage), so that a renewal is an
-- issuance by the same identity under the policy of the day.

ALTER TABLE certs ADD COLUMN lineage TEXT NOT NULL DEFAULT '';
