package config

import (
	"strings"
	"testing"
	"time"
)

func TestConsole(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, err string
	}{
		{name: "ok/users", yaml: "service:\n  console:\n    admins:\n      users: [alice]\n"},
		{name: "ok/groups-and-times", yaml: "service:\n  console:\n    admins:\n      groups: [ops]\n    idle_timeout: 10m\n    max_session: 8h\n"},
		{name: "fail/no-admins", yaml: "service:\n  console: {}\n", err: "service.console.admins: name at least one user or group"},
		{name: "fail/bad-user", yaml: "service:\n  console:\n    admins:\n      users: [\"a b\"]\n", err: "service.console.admins.users[0]"},
		{name: "fail/idle-over-max", yaml: "service:\n  console:\n    admins:\n      users: [alice]\n    idle_timeout: 2h\n    max_session: 1h\n", err: "service.console.idle_timeout: is longer than max_session"},
		{name: "fail/too-long", yaml: "service:\n  console:\n    admins:\n      users: [alice]\n    max_session: 8d\n", err: "service.console.max_session: must be between 0 and 7d"},
		{name: "ok/public-url", yaml: "service:\n  console:\n    admins:\n      users: [alice]\n    public_url: https://ca.example.com:8443\n"},
		{name: "fail/public-url-http", yaml: "service:\n  console:\n    admins:\n      users: [alice]\n    public_url: http://ca.example.com\n", err: "service.console.public_url: must be an https://"},
		{name: "fail/public-url-path", yaml: "service:\n  console:\n    admins:\n      users: [alice]\n    public_url: https://ca.example.com/x\n", err: "service.console.public_url"},
		{name: "fail/unknown-key", yaml: "service:\n  console:\n    admins:\n      users: [alice]\n    enabled: true\n", err: "enabled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.yaml))
			if err == nil {
				err = c.Validate()
			}
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c.Service.Console == nil {
					t.Fatal("console not decoded")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want one containing %q", err, tc.err)
			}
		})
	}
	c, err := Parse([]byte("service:\n  console:\n    admins:\n      users: [alice]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Service.Console.IdleOrDefault(); got != DefaultConsoleIdle {
		t.Fatalf("idle default %v", got)
	}
	if got := c.Service.Console.MaxOrDefault(); got != 12*time.Hour {
		t.Fatalf("max default %v", got)
	}
}
