-- sshca schema, version 8: certificates by CA key and expiry, so that what
-- CA rotation asks of every generation (how many certificates it signed,
-- the last to expire: store.GenerationStats, run by sshca krl, ca retire,
-- the service's start and /metrics) reads this index, not every
-- certificate with its body.

CREATE INDEX certs_ca_expiry ON certs (ca_type, ca_fp, valid_before);
