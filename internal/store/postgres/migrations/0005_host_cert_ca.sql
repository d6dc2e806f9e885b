-- sshca schema, version 5: the fingerprint of the CA key that signed the
-- host certificate a fleet agent reported with, so that after a host CA
-- rotation `fleet status` shows which hosts are still on the old key.

ALTER TABLE hosts ADD COLUMN host_cert_ca TEXT NOT NULL DEFAULT '';
