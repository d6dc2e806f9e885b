package server

import (
	"encoding/json"
	"net/http"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/jsonenc"
)

// writeCert answers with one certificate object: the bytes writeJSON
// would write, without encoding/json's reflection where
// api.AppendCertificateJSON can promise them (every issuance answers so).
func writeCert(w http.ResponseWriter, status int, c api.CertResponse) {
	b, ok := api.AppendCertificateJSON(make([]byte, 0, 2048), &c)
	if !ok {
		writeJSON(w, status, c)
		return
	}
	writeRawJSON(w, status, append(b, '\n'))
}

// writeBatch answers a batch as writeJSON would, each certificate written
// as writeCert writes it.
func writeBatch(w http.ResponseWriter, resp api.BatchCertResponse) {
	b, ok := appendBatchJSON(make([]byte, 0, 1600*len(resp.Results)+64), &resp)
	if !ok {
		writeJSON(w, http.StatusOK, resp)
		return
	}
	writeRawJSON(w, http.StatusOK, append(b, '\n'))
}

// appendBatchJSON appends what encoding/json.Marshal writes for resp.
func appendBatchJSON(b []byte, resp *api.BatchCertResponse) (_ []byte, ok bool) {
	b = append(b, `{"results":`...)
	if resp.Results == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range resp.Results {
			if i > 0 {
				b = append(b, ',')
			}
			r := &resp.Results[i]
			if r.Certificate != nil && r.Error == nil {
				if b, ok = api.AppendCertificateJSON(b, r.Certificate); !ok {
					return b, false
				}
				continue
			}
			j, err := json.Marshal(r)
			if err != nil {
				return b, false
			}
			b = append(b, j...)
		}
		b = append(b, ']')
	}
	b = jsonenc.String(append(b, `,"request_id":`...), resp.RequestID)
	return append(b, '}'), true
}

// writeRawJSON writes body, JSON already encoded, with writeJSON's headers.
func writeRawJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
