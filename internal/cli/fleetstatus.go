package cli

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/config"
	"github.com/sshca/sshca/internal/store"
)

// hostState classifies a reported host.
func hostState(h store.Host, latest uint64, activeCAs []string, now time.Time, staleAfter, expiringWithin time.Duration) []string {
	var flags []string
	if now.Sub(h.LastSeen) > staleAfter {
		flags = append(flags, "stale")
	}
	if h.Stale {
		flags = append(flags, "sync-failing")
	}
	if h.KRLVersion < latest {
		flags = append(flags, fmt.Sprintf("krl-behind-%d", latest-h.KRLVersion))
	}
	for _, fp := range activeCAs {
		found := false
		for _, have := range h.CAKeys {
			if have == fp {
				found = true
			}
		}
		if !found {
			flags = append(flags, "missing-ca-key")
			break
		}
	}
	if !h.HostCertExpiry.IsZero() && h.HostCertExpiry.Sub(now) < expiringWithin {
		if h.HostCertExpiry.Before(now) {
			flags = append(flags, "host-cert-expired")
		} else {
			flags = append(flags, "host-cert-expiring")
		}
	}
	return flags
}

func publishedFingerprints(e *env, st store.Store, caType string) ([]string, error) {
	keys, err := st.ListCAKeys(e.ctx, caType)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, k := range keys {
		if published(k) {
			out = append(out, k.Fingerprint)
		}
	}
	return out, nil
}

// caGenerations names the user CA generations behind fingerprints ("1,2"),
// with "?" for a key this CA does not know.
func caGenerations(fps []string, gens map[string]int) string {
	var out []string
	for _, fp := range fps {
		if g, ok := gens[fp]; ok {
			out = append(out, strconv.Itoa(g))
		} else {
			out = append(out, "?")
		}
	}
	if len(out) == 0 {
		return "-"
	}
	return strings.Join(out, ",")
}

func newFleetStatusCommand() *command {
	var staleAfter, expiringWithin string
	var asJSON bool
	return &command{
		name:    "fleet status",
		summary: "list servers with last report, KRL version lag, trusted CA generations and host certificate expiry",
		usage:   "[--stale-after D] [--expiring-within D] [--json]",
		example: `  sshca fleet status
  sshca fleet status --stale-after 30m --expiring-within 7d
  sshca fleet status --json | jq -r 'select(.ok | not) | .name'`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&staleAfter, "stale-after", "15m", "a host not heard from for this long is stale")
			fs.StringVar(&expiringWithin, "expiring-within", "24h", "flag host certificates that expire sooner than this")
			fs.BoolVar(&asJSON, "json", false, "print one JSON fleet host object per line (docs/json.md)")
		},
		maxArgs: 0,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			sa, err := config.ParseDuration(staleAfter)
			if err != nil || sa <= 0 {
				return usagef("fleet status: --stale-after must be a positive duration")
			}
			ew, err := config.ParseDuration(expiringWithin)
			if err != nil || ew < 0 {
				return usagef("fleet status: --expiring-within must be a duration")
			}
			h, err := e.openHome("")
			if err != nil {
				return err
			}
			defer h.Close()
			hosts, err := h.Store.ListHosts(e.ctx)
			if err != nil {
				return err
			}
			latest, err := h.Store.KRLVersion(e.ctx, "user")
			if err != nil {
				return err
			}
			fps, err := publishedFingerprints(e, h.Store, "user")
			if err != nil {
				return err
			}
			keys, err := h.Store.ListCAKeys(e.ctx, "user")
			if err != nil {
				return err
			}
			gens := map[string]int{}
			for _, k := range keys {
				gens[k.Fingerprint] = k.Generation
			}
			// The host CA generation behind each host certificate: after a
			// host CA rotation, hosts still on the old key are flagged
			// host-cert-old-ca until their agent renews.
			hostKeys, err := h.Store.ListCAKeys(e.ctx, "host")
			if err != nil {
				return err
			}
			hostGens, activeHostCA := map[string]int{}, ""
			for _, k := range hostKeys {
				hostGens[k.Fingerprint] = k.Generation
				if k.State == store.StateActive {
					activeHostCA = k.Fingerprint
				}
			}
			now := time.Now()
			if asJSON {
				out := make([]api.FleetHost, len(hosts))
				for i, x := range hosts {
					flags := hostState(x, latest, fps, now, sa, ew)
					if x.HostCertCA != "" && activeHostCA != "" && x.HostCertCA != activeHostCA {
						flags = append(flags, "host-cert-old-ca")
					}
					out[i] = fleetHostJSON(x, latest, gens, hostGens, flags, now)
				}
				return printJSON(e, out...)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "HOST\tLAST SEEN\tKRL\tCA GENS\tHOST CA GEN\tHOST CERT EXPIRES\tSTATUS\n")
			for _, x := range hosts {
				flags := hostState(x, latest, fps, now, sa, ew)
				hostGen := "-"
				if x.HostCertCA != "" {
					hostGen = caGenerations([]string{x.HostCertCA}, hostGens)
					if activeHostCA != "" && x.HostCertCA != activeHostCA {
						flags = append(flags, "host-cert-old-ca")
					}
				}
				status := "ok"
				if len(flags) > 0 {
					status = strings.Join(flags, ",")
				}
				exp := "-"
				if !x.HostCertExpiry.IsZero() {
					exp = x.HostCertExpiry.UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s ago\t%d/%d\t%s\t%s\t%s\t%s\n", x.Name, now.Sub(x.LastSeen).Round(time.Second), x.KRLVersion, latest,
					caGenerations(x.CAKeys, gens), hostGen, exp, status)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			for _, x := range hosts {
				if x.Stale && x.Detail != "" {
					fmt.Fprintf(e.stdout, "%s: %s\n", x.Name, x.Detail)
				}
			}
			return nil
		},
	}
}

// fleetHostJSON is the FleetHost object of a reported host.
func fleetHostJSON(x store.Host, latest uint64, gens, hostGens map[string]int, flags []string, now time.Time) api.FleetHost {
	out := api.FleetHost{Name: x.Name, LastSeen: utcOrZero(x.LastSeen), LastSeenAgeSeconds: max(int64(now.Sub(x.LastSeen)/time.Second), 0),
		KRLVersion: x.KRLVersion, KRLLatest: latest, CAKeys: []api.FleetCAKey{}, HostCertExpiry: utcOrZero(x.HostCertExpiry),
		HostCertCAFingerprint: x.HostCertCA, HostCertCAGeneration: hostGens[x.HostCertCA], SyncFailing: x.Stale, Detail: x.Detail,
		Flags: append([]string{}, flags...), OK: len(flags) == 0}
	for _, fp := range x.CAKeys {
		out.CAKeys = append(out.CAKeys, api.FleetCAKey{Fingerprint: fp, Generation: gens[fp]})
	}
	return out
}
