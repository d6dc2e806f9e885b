package cli

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sshca/sshca/internal/config"
)

func newFleetWaitCommand() *command {
	var version, timeout, staleAfter string
	return &command{
		name:    "fleet wait",
		summary: "wait until every live server has installed a KRL version (exit 1 on timeout, listing those behind)",
		usage:   "--krl-version N|latest [--timeout D] [--stale-after D]",
		example: `  sshca revoke --serial 42 && sshca fleet wait --krl-version latest --timeout 10m`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&version, "krl-version", "latest", "KRL version to wait for, or latest")
			fs.StringVar(&timeout, "timeout", "10m", "give up after this long")
			fs.StringVar(&staleAfter, "stale-after", "15m", "hosts not heard from for this long are not waited for (and are listed)")
		},
		maxArgs: 0,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			to, err := config.ParseDuration(timeout)
			if err != nil || to <= 0 {
				return usagef("fleet wait: --timeout must be a positive duration")
			}
			sa, err := config.ParseDuration(staleAfter)
			if err != nil || sa <= 0 {
				return usagef("fleet wait: --stale-after must be a positive duration")
			}
			var want uint64
			if version != "latest" {
				if want, err = strconv.ParseUint(version, 10, 64); err != nil {
					return usagef("fleet wait: --krl-version must be a number or latest")
				}
			}
			h, err := e.openHome("")
			if err != nil {
				return err
			}
			defer h.Close()
			if version == "latest" {
				if want, err = h.Store.KRLVersion(e.ctx, "user"); err != nil {
					return err
				}
			}
			deadline := time.Now().Add(to)
			for {
				hosts, err := h.Store.ListHosts(e.ctx)
				if err != nil {
					return err
				}
				now := time.Now()
				var behind, dead []string
				for _, x := range hosts {
					if now.Sub(x.LastSeen) > sa {
						dead = append(dead, x.Name)
						continue
					}
					if x.KRLVersion < want {
						behind = append(behind, fmt.Sprintf("%s (has %d)", x.Name, x.KRLVersion))
					}
				}
				if len(behind) == 0 {
					fmt.Fprintf(e.stdout, "every live host has KRL version %d or later (%d hosts)\n", want, len(hosts)-len(dead))
					if len(dead) > 0 {
						fmt.Fprintf(e.stdout, "not heard from within %s: %s\n", sa, strings.Join(dead, ", "))
					}
					return nil
				}
				if now.After(deadline) {
					return withHint(fmt.Errorf("timed out waiting for KRL version %d; behind: %s", want, strings.Join(behind, ", ")),
						"check `sshca fleet status` and the sync logs on those hosts")
				}
				select {
				case <-e.ctx.Done():
					return e.ctx.Err()
				case <-time.After(time.Second):
				}
			}
		},
	}
}
