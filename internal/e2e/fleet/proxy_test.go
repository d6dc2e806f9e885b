package fleet

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/sshca/sshca/internal/client"
	"github.com/sshca/sshca/internal/server"
)

// canned is a response a proxy serves instead of the service's.
type canned struct {
	status int
	body   []byte
}

// proxy is an HTTPS server of its own (with its own certificate, pinned by
// FP) that forwards every request to the real service, except for the
// paths given a canned response: a service that tampers one answer.
type proxy struct {
	URL, FP string

	mu       sync.Mutex
	override map[string]canned // by URL path, or path?query for one query only
}

func newProxy(t *testing.T, svc *service) *proxy {
	t.Helper()
	p := &proxy{}
	upstream := &http.Client{Transport: &http.Transport{TLSClientConfig: client.PinnedTLSConfig(svc.FP)}}
	t.Cleanup(upstream.CloseIdleConnections)
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		c, ok := p.override[r.URL.Path+"?"+r.URL.RawQuery]
		if !ok {
			c, ok = p.override[r.URL.Path]
		}
		p.mu.Unlock()
		if ok {
			w.WriteHeader(c.status)
			_, _ = w.Write(c.body)
			return
		}
		body, _ := io.ReadAll(r.Body)
		req, err := http.NewRequestWithContext(r.Context(), r.Method, svc.URL+r.URL.RequestURI(), bytes.NewReader(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		req.Header = r.Header.Clone()
		resp, err := upstream.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}))
	t.Cleanup(ts.Close)
	p.URL = ts.URL
	p.FP = server.CertFingerprint(ts.Certificate().Raw)
	return p
}

// set replaces the canned responses (nil: forward everything).
func (p *proxy) set(m map[string]canned) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.override = m
}
