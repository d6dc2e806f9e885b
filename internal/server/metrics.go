package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sshca/sshca/internal/buildinfo"
)

// Metrics are the service's Prometheus metrics, on their own registry.
type Metrics struct {
	reg         *prometheus.Registry
	issuedC     *prometheus.CounterVec
	deniedC     *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	krlVersion_ *prometheus.GaugeVec
}

// NewMetrics registers the metrics.
func NewMetrics() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.issuedC = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sshca_certificates_issued_total", Help: "Certificates issued, by role and type."}, []string{"role", "type"})
	m.deniedC = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sshca_requests_denied_total", Help: "Requests refused, by role and reason."}, []string{"role", "reason"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sshca_http_request_duration_seconds", Help: "Request latency by route and status.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}}, []string{"route", "status"})
	m.krlVersion_ = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sshca_krl_version", Help: "Version of the KRL last served, by CA type."}, []string{"type"})
	bi := buildinfo.Get()
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sshca_build_info", Help: "The running sshca: version, VCS revision and Go version (always 1)."}, []string{"version", "revision", "goversion"})
	build.WithLabelValues(bi.Version, bi.ShortRevision(), bi.GoVersion).Set(1)
	m.reg.MustRegister(m.issuedC, m.deniedC, m.latency, m.krlVersion_, build,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

func (m *Metrics) issued(role, typ string) { m.issuedC.WithLabelValues(role, typ).Inc() }

func (m *Metrics) denied(role, reason string) {
	if role == "" {
		role = "none"
	}
	m.deniedC.WithLabelValues(role, reason).Inc()
}

func (m *Metrics) observe(route string, status int, d time.Duration) {
	m.latency.WithLabelValues(route, strconv.Itoa(status)).Observe(d.Seconds())
}

func (m *Metrics) krlVersion(typ string, v uint64) {
	m.krlVersion_.WithLabelValues(typ).Set(float64(v))
}

// commitStats exports the authority's group-commit counters. Metrics shared
// by several servers keep the first authority's (registering twice is not an
// error worth failing a start for).
func (m *Metrics) commitStats(stats func() (batches, items uint64)) {
	for _, c := range []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "sshca_store_commit_batches_total",
			Help: "Transactions written by the issuance group commit."}, func() float64 { b, _ := stats(); return float64(b) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "sshca_store_commit_items_total",
			Help: "Records (certificates and denials) written by the issuance group commit; divided by batches, the mean batch size."},
			func() float64 { _, n := stats(); return float64(n) }),
	} {
		_ = m.reg.Register(c)
	}
}
