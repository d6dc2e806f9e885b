package main

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sshca/sshca/internal/store/postgres/pgtest"
	"github.com/sshca/sshca/internal/testkit"
)

// TestServiceShort runs the service suite in short mode: both backends
// (PostgreSQL skipped outside CI when it is not installed), every level,
// every response verified.
func TestServiceShort(t *testing.T) {
	o := testOptions(t)
	_, pgErr := pgtest.FindBinDir()
	if pgErr != nil {
		if testkit.CI() {
			t.Fatalf("PostgreSQL is required in CI: %v", pgErr)
		}
		t.Logf("PostgreSQL rows skipped: %v", pgErr)
	}
	secs, err := runService(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	requireChecks(t, secs)
	backends := map[string]int{}
	for _, r := range secs[0].Rows {
		backends[r[0]]++
	}
	want := map[string]int{"SQLite": len(svcClients) + 1} // and the batch endpoint's row
	if pgErr == nil {
		want["PostgreSQL"] = len(svcClients) + 1
	}
	for b, n := range want {
		if backends[b] != n {
			t.Errorf("%d %s rows, want %d", backends[b], b, n)
		}
	}
	var md strings.Builder
	writeMarkdown(&md, secs)
	t.Log("\n" + md.String())
}

func TestLoadReadResponse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		status  int
		body    string
		closing bool
		wantErr bool
	}{
		{name: "ok/content-length", in: "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\ncontent-length: 5\r\n\r\nhello",
			status: 200, body: "hello"},
		{name: "ok/chunked", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\nA\r\n, world!!!\r\n0\r\nX-Trailer: 1\r\n\r\n",
			status: 200, body: "hello, world!!!"},
		{name: "ok/error-status", in: "HTTP/1.1 429 Too Many Requests\r\nContent-Length: 2\r\n\r\n{}", status: 429, body: "{}"},
		{name: "ok/connection-close", in: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", status: 200, closing: true},
		{name: "ok/no-content", in: "HTTP/1.1 204 No Content\r\n\r\n", status: 204},
		{name: "fail/eof-in-body", in: "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhello", wantErr: true},
		{name: "fail/eof-in-head", in: "HTTP/1.1 200 OK\r\nContent-Len", wantErr: true},
		{name: "fail/no-length", in: "HTTP/1.1 200 OK\r\n\r\nhello", wantErr: true},
		{name: "fail/status-line", in: "HTTP/1.1 2x0 OK\r\n\r\n", wantErr: true},
		{name: "fail/not-http", in: "SSH-2.0-OpenSSH\r\n\r\n", wantErr: true},
		{name: "fail/bad-length", in: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", wantErr: true},
		{name: "fail/huge-length", in: "HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n", wantErr: true},
		{name: "fail/gzip", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", wantErr: true},
		{name: "fail/bad-chunk", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", wantErr: true},
		{name: "fail/chunk-without-crlf", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhiX\r\n0\r\n\r\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Two responses back to back: the first must end exactly where
			// the second begins.
			in := tt.in + tt.in
			if tt.wantErr {
				in = tt.in
			}
			br := bufio.NewReader(strings.NewReader(in))
			for i := range 2 {
				status, body, closing, err := loadReadResponse(br, []byte("prefix:"))
				if tt.wantErr {
					if err == nil {
						t.Fatalf("no error; status %d body %q", status, body)
					}
					if errors.Is(err, io.EOF) {
						t.Errorf("error %v: a truncated response must not look like a clean EOF", err)
					}
					return
				}
				if err != nil {
					t.Fatalf("response %d: %v", i, err)
				}
				got := []any{status, string(body), closing}
				want := []any{tt.status, "prefix:" + tt.body, tt.closing}
				if d := cmp.Diff(want, got); d != "" {
					t.Errorf("response %d (-want +got):\n%s", i, d)
				}
			}
			if _, _, _, err := loadReadResponse(br, nil); !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("after the input: %v, want io.ErrUnexpectedEOF", err)
			}
		})
	}
}
