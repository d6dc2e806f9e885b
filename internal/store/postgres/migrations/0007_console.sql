-- sshca schema, version 7: indexes of the admin console. A person's
-- certificates are found by the identity of their lineage (JSON text, ''
-- for records from before lineages), and records from before lineages by
-- their requester, in a partial index that new rows never enter. Same
-- expressions as sqlstore's identityCond.

CREATE INDEX certs_identity ON certs (((NULLIF(lineage, '')::jsonb) ->> 'identity'));
CREATE INDEX certs_legacy_requester ON certs (requester) WHERE lineage = '';
