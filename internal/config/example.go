package config

// Example is the commented sshca.yaml that "sshca init" writes: the example
// policy of the product specification, with a comment on every key.
const Example = `# sshca.yaml: the policy of this certificate authority.
# Unknown keys are errors. Durations use Go syntax plus d (days) and
# w (weeks): 90m, 8h, 7d, 52w, 1w2d.

# Every certificate starts this long before it is signed, so that servers
# whose clocks run a little behind accept it at once (0 to 1h).
backdate: 5m

# Optional PostgreSQL database, for several replicas of the service sharing
# state; without it the embedded SQLite database in the home is used.
# Give the password in a passfile, never in this URL.
# database: postgres://sshca@db.example.com/sshca?sslmode=verify-full

# What a certificate may contain. A request names one role and never gets
# more than the role grants. Role names: lower-case letters, digits, - and _.
roles:
  # People and CI jobs that deploy.
  deploy:
    type: user                      # user | host
    principals: [role-deploy, ci]   # what the role may grant; a request asks for a subset (default: all).
                                    # Templates such as "u-{{.User}}" or "grp-{{.Groups}}" expand over
                                    # the identity the service authenticated.
    default_ttl: 8h                 # lifetime when the request names none (omitted: max_ttl)
    max_ttl: 12h                    # longest lifetime a request may have
    extensions: [permit-pty, permit-port-forwarding]     # the whole set; nothing else is granted
    source_address: [10.0.0.0/8, 192.168.0.0/16]         # optional critical option: usable only from there
    # Through the service (sshca serve), who may use the role, and how its
    # certificates renew. The admin at this CLI may use every role.
    # allow: {users: [alice], groups: [deployers]}       # people signed in with SSO
    #   also local_users: [bob], local_groups: [ops]     # local users of the SSH front door (sshca user add)
    # require_mfa: true             # a second factor (OIDC amr or TOTP); API tokens then cannot use it
    # renewal: service              # service (default) | any (also CLI-signed) | none
    # max_session: 7d               # renewals end this long after the sign-in (default 7d)

  # Backup jobs that may run nothing but rsync.
  rsync:
    type: user                      # user certificates
    principals: [role-rsync]        # the only principal granted
    max_ttl: 48h                    # no default_ttl: requests without a lifetime get 48h
    force_command: /usr/local/bin/rsync-wrapper          # optional critical option: the only command run
    # verify_required: true         # optional critical option: FIDO (sk) keys must sign with a PIN, not a touch alone
    extensions: []                  # no pty, no forwarding

  # Host certificates, so that clients need no trust-on-first-use prompt.
  servers:
    type: host                      # host certificates carry no extensions or critical options
    principals: ["*.corp", "10.0.1.0/24"]   # host-name globs and CIDRs a host principal must match
    max_ttl: 52w                    # hosts renew long before this
    # wildcard_principals: true     # also issue "*.corp"-style principals; only OpenSSH >= 10.3 clients accept them (README)
`
