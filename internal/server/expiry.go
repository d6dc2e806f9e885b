package server

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sshca/sshca/internal/ca"
)

// expiryCacheTTL is how long a snapshot of the store serves scrapes: any
// number of scrapers cost the database at most one snapshot per period.
const expiryCacheTTL = 10 * time.Second

// expiryTimeout bounds the reading of one snapshot.
const expiryTimeout = 10 * time.Second

var (
	descCALastExpiry = prometheus.NewDesc("sshca_ca_last_certificate_expiry_timestamp_seconds",
		"Expiry (Unix time) of the last certificate the CA key generation signed: servers must trust it until then. Absent for a generation that signed nothing.",
		[]string{"type", "generation", "state"}, nil)
	descCARetireDeadline = prometheus.NewDesc("sshca_ca_retire_deadline_timestamp_seconds",
		"For a retiring CA key generation, the earliest time (Unix) it may be retired: its last certificate's expiry plus the retire grace.",
		[]string{"type", "generation"}, nil)
	descOutstanding = prometheus.NewDesc("sshca_certificates_outstanding",
		"Certificates valid now and not revoked, by CA type and role (roles no longer in the policy as \"unknown\").",
		[]string{"type", "role"}, nil)
	descHostCertExpiry = prometheus.NewDesc("sshca_host_certificate_expiry_timestamp_seconds",
		"Expiry (Unix time) of the host certificate a server's agent last reported.",
		[]string{"host"}, nil)
	descHostKRLLag = prometheus.NewDesc("sshca_host_krl_lag",
		"How many user KRL versions a server's installed KRL is behind the current one, as its agent last reported.",
		[]string{"host"}, nil)
	descHostLastReport = prometheus.NewDesc("sshca_host_last_report_timestamp_seconds",
		"When (Unix time) a server's agent last reported.",
		[]string{"host"}, nil)
	descFleetOldestHostCert = prometheus.NewDesc("sshca_fleet_host_certificate_expiry_min_timestamp_seconds",
		"The earliest host certificate expiry (Unix time) among the servers' reports: the next host certificate to expire.",
		nil, nil)
	descFleetKRLLag = prometheus.NewDesc("sshca_fleet_krl_lag_max",
		"The most user KRL versions any server is behind, from the servers' reports.",
		nil, nil)
	descExpiryUp = prometheus.NewDesc("sshca_expiry_metrics_up",
		"1 when the expiry metrics were read from the store, 0 when reading them failed (the error is logged).",
		nil, nil)
)

// expiryCollector exports the expiry gauges from a cached ca.Snapshot. It
// reads only the store: nothing a request sends becomes a label (host names
// come from the reports of agents that hold certificates, roles from the
// policy).
type expiryCollector struct {
	s *Server

	mu   sync.Mutex
	snap *ca.Snapshot
	at   time.Time
	err  error
}

func (c *expiryCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCALastExpiry, descCARetireDeadline, descOutstanding, descHostCertExpiry,
		descHostKRLLag, descHostLastReport, descFleetOldestHostCert, descFleetKRLLag, descExpiryUp} {
		ch <- d
	}
}

// snapshot returns the cached snapshot, reading a new one when it is older
// than expiryCacheTTL. Concurrent scrapes wait for one read.
func (c *expiryCollector) snapshot() (*ca.Snapshot, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.s.now()
	if !c.at.IsZero() && now.Sub(c.at) < expiryCacheTTL && now.Sub(c.at) >= 0 {
		return c.snap, c.err
	}
	ctx, cancel := context.WithTimeout(context.Background(), expiryTimeout)
	defer cancel()
	c.snap, c.err = ca.Monitor(ctx, c.s.o.Store, c.s.o.Config.RetireGraceOrDefault(), now)
	c.at = now
	if c.err != nil {
		c.s.log.Warn("expiry metrics: read the store", "error", c.err.Error())
	}
	return c.snap, c.err
}

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

func (c *expiryCollector) Collect(ch chan<- prometheus.Metric) {
	snap, err := c.snapshot()
	if err != nil {
		ch <- prometheus.MustNewConstMetric(descExpiryUp, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(descExpiryUp, prometheus.GaugeValue, 1)
	for _, g := range snap.Generations {
		gen := strconv.Itoa(g.Generation)
		if !g.LastExpiry.IsZero() {
			ch <- prometheus.MustNewConstMetric(descCALastExpiry, prometheus.GaugeValue, unix(g.LastExpiry), g.CAType, gen, g.State)
		}
		if !g.RetireDeadline.IsZero() {
			ch <- prometheus.MustNewConstMetric(descCARetireDeadline, prometheus.GaugeValue, unix(g.RetireDeadline), g.CAType, gen)
		}
	}
	// Every role of the policy, 0 when it has nothing outstanding, so that
	// an alert on a role's count never meets an absent series.
	counts := map[[2]string]int{}
	if a := c.s.o.Authority; a != nil {
		for name, r := range a.Roles {
			counts[[2]string{r.Type.String(), name}] = 0
		}
	}
	for _, rc := range snap.Outstanding {
		counts[[2]string{rc.CAType, c.s.roleLabel(rc.Role)}] += rc.Count
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(descOutstanding, prometheus.GaugeValue, float64(n), k[0], k[1])
	}
	current := snap.KRLVersion["user"]
	var oldest time.Time
	maxLag := 0.0
	for _, h := range snap.Hosts {
		lag := 0.0
		if h.KRLVersion < current {
			lag = float64(current - h.KRLVersion)
		}
		maxLag = max(maxLag, lag)
		ch <- prometheus.MustNewConstMetric(descHostKRLLag, prometheus.GaugeValue, lag, h.Name)
		ch <- prometheus.MustNewConstMetric(descHostLastReport, prometheus.GaugeValue, unix(h.LastSeen), h.Name)
		if !h.HostCertExpiry.IsZero() {
			ch <- prometheus.MustNewConstMetric(descHostCertExpiry, prometheus.GaugeValue, unix(h.HostCertExpiry), h.Name)
			if oldest.IsZero() || h.HostCertExpiry.Before(oldest) {
				oldest = h.HostCertExpiry
			}
		}
	}
	if !oldest.IsZero() {
		ch <- prometheus.MustNewConstMetric(descFleetOldestHostCert, prometheus.GaugeValue, unix(oldest))
	}
	if len(snap.Hosts) > 0 {
		ch <- prometheus.MustNewConstMetric(descFleetKRLLag, prometheus.GaugeValue, maxLag)
	}
}

// expiry registers the expiry gauges; like commitStats, the first server
// sharing the metrics keeps them.
func (m *Metrics) expiry(c *expiryCollector) { _ = m.reg.Register(c) }
