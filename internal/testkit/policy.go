package testkit

// Policy is the standard sshca.yaml of the tests that run a certificate
// service over a fresh home: rate limits high enough never to refuse a
// test's burst; the user role deploy (principals role-deploy and ci, 30m by
// default, at most 1h, permit-pty; alice and the group deployers), other
// (role-other, nobody by identity), secure (role-secure, a second factor
// required; alice and carol), personal (principals from the caller's name
// and dev groups; groups dev and admins), and the host role servers
// (*.corp, at most 24h).
//
// A test that needs a variant edits a copy with strings.Replace on one of
// these lines, so that the variant is visibly this policy and one change.
const Policy = `backdate: 5m
service:
  rate_limit: 100000
  anonymous_rate_limit: 100000
roles:
  deploy:
    type: user
    principals: [role-deploy, ci]
    default_ttl: 30m
    max_ttl: 1h
    extensions: [permit-pty]
    allow:
      users: [alice]
      groups: [deployers]
  other:
    type: user
    principals: [role-other]
    max_ttl: 1h
  secure:
    type: user
    principals: [role-secure]
    max_ttl: 1h
    require_mfa: true
    allow:
      users: [alice, carol]
  personal:
    type: user
    principals: ["u-{{.User}}", "grp-{{.Groups}}"]
    template_groups: [dev]
    max_ttl: 1h
    allow:
      groups: [dev, admins]
  servers:
    type: host
    principals: ["*.corp"]
    max_ttl: 24h
`
