package oidc

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sshca/sshca/internal/oidc/oidctest"
)

// waitPolled blocks until the issuer has answered at least one poll for
// userCode, so that the test sees authorization_pending before deciding.
func waitPolled(ctx context.Context, iss *oidctest.Issuer, userCode string) error {
	for iss.Polls(userCode) == 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// TestDeviceFlow runs RFC 8628 end to end against oidctest. Polls come a
// second apart (the issuer's interval, the least RFC 8628 can express), so the
// cases run in parallel with each other and with the other tests.
func TestDeviceFlow(t *testing.T) {
	t.Parallel()
	iss := oidctest.New(t)
	v := newVerifier(t, iss, nil)
	claims := map[string]any{"sub": "alice", "groups": []string{"ops"}, "amr": []string{"pwd", "otp"}}
	tests := []struct {
		name    string
		decide  func(userCode string)
		waitFor bool // decide only after a pending poll
		cancel  bool
		want    *Identity
		wantErr error
	}{
		{name: "ok/pending then approved", decide: func(c string) { iss.ApproveDevice(c, claims) }, waitFor: true,
			want: &Identity{Subject: "alice", User: "alice", Groups: []string{"ops"}, AMR: []string{"pwd", "otp"}}},
		{name: "fail/denied", decide: iss.DenyDevice, wantErr: ErrAccessDenied},
		{name: "fail/expired", decide: iss.ExpireDevice, wantErr: ErrDeviceExpired},
		{name: "fail/canceled while pending", cancel: true, waitFor: true, wantErr: context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			var shownURI, shownCode, shownComplete string
			decided := make(chan error, 1)
			d := &DeviceFlow{Issuer: iss.URL(), ClientID: oidctest.ClientID, HTTPClient: iss.Client()}
			raw, err := d.Login(ctx, func(uri, code, complete string) {
				shownURI, shownCode, shownComplete = uri, code, complete
				go func() {
					var err error
					if tt.waitFor {
						err = waitPolled(ctx, iss, code)
					}
					if err == nil {
						if tt.cancel {
							cancel()
						} else {
							tt.decide(code)
						}
					}
					decided <- err
				}()
			})
			if werr := <-decided; werr != nil {
				t.Fatalf("waiting for a pending poll: %v", werr)
			}
			if shownURI != iss.URL()+"/device" || shownComplete != shownURI+"?user_code="+shownCode || len(shownCode) != 9 {
				t.Fatalf("shown %q %q %q", shownURI, shownCode, shownComplete)
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || raw != "" {
					t.Fatalf("Login = %q, %v; want error %v", raw, err, tt.wantErr)
				}
				if !strings.HasPrefix(err.Error(), "oidc: ") && !errors.Is(err, context.Canceled) {
					t.Fatalf("error %q lacks the package prefix", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Login: %v", err)
			}
			if n := iss.Polls(shownCode); n < 2 {
				t.Fatalf("token endpoint polled %d times, want a pending answer before the token", n)
			}
			id, err := v.Verify(ctx, raw)
			if err != nil {
				t.Fatalf("verify the device-flow token: %v", err)
			}
			if diff := cmp.Diff(tt.want.User, id.User); diff != "" {
				t.Fatalf("user (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want.Groups, id.Groups); diff != "" {
				t.Fatalf("groups (-want +got):\n%s", diff)
			}
			if !id.HasMFA() {
				t.Fatalf("amr %v: want MFA", id.AMR)
			}
			for _, c := range iss.PendingUserCodes() {
				if c == shownCode {
					t.Fatalf("user code %s still pending after approval", c)
				}
			}
		})
	}
}

// TestDeviceFlowSetup covers failures before any polling: they return at once.
func TestDeviceFlowSetup(t *testing.T) {
	t.Parallel()
	iss := oidctest.New(t)
	deviceResp := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, body)
		}
	}
	withDevice := `{"issuer":"{{URL}}","jwks_uri":"{{URL}}/jwks","token_endpoint":"{{URL}}/token","device_authorization_endpoint":"{{URL}}/device/code"}`
	tests := []struct {
		name   string
		flow   func() *DeviceFlow
		phrase string
	}{
		{name: "fail/no client ID", flow: func() *DeviceFlow { return &DeviceFlow{Issuer: iss.URL()} }, phrase: "client ID required"},
		{name: "fail/plain http issuer", flow: func() *DeviceFlow { return &DeviceFlow{Issuer: "http://idp.example.com", ClientID: "c"} }, phrase: "http is allowed only for localhost"},
		{name: "fail/unknown client", flow: func() *DeviceFlow {
			return &DeviceFlow{Issuer: iss.URL(), ClientID: "someone-else", HTTPClient: iss.Client()}
		}, phrase: "invalid_client"},
		{name: "fail/no device endpoint", flow: func() *DeviceFlow {
			srv := fakeIssuer(t, `{"issuer":"{{URL}}","jwks_uri":"{{URL}}/jwks","token_endpoint":"{{URL}}/token"}`, nil)
			return &DeviceFlow{Issuer: srv.URL, ClientID: "c"}
		}, phrase: "no device_authorization_endpoint"},
		{name: "fail/token endpoint elsewhere over http", flow: func() *DeviceFlow {
			srv := fakeIssuer(t, `{"issuer":"{{URL}}","token_endpoint":"http://idp.example.com/token","device_authorization_endpoint":"{{URL}}/device/code"}`, nil)
			return &DeviceFlow{Issuer: srv.URL, ClientID: "c"}
		}, phrase: "token_endpoint"},
		{name: "fail/terminal escape in user code", flow: func() *DeviceFlow {
			srv := fakeIssuer(t, withDevice, map[string]http.HandlerFunc{"POST /device/code": deviceResp(`{"device_code":"d","user_code":"AB\u001b[2JCD","verification_uri":"https://idp.example.com/device","interval":1,"expires_in":60}`)})
			return &DeviceFlow{Issuer: srv.URL, ClientID: "c"}
		}, phrase: "user_code contains control characters"},
		{name: "fail/bidi override in URI", flow: func() *DeviceFlow {
			srv := fakeIssuer(t, withDevice, map[string]http.HandlerFunc{"POST /device/code": deviceResp(`{"device_code":"d","user_code":"ABCD","verification_uri":"https://idp.example.com/\u202edevice","interval":1,"expires_in":60}`)})
			return &DeviceFlow{Issuer: srv.URL, ClientID: "c"}
		}, phrase: "verification_uri contains control characters"},
		{name: "fail/javascript URI", flow: func() *DeviceFlow {
			srv := fakeIssuer(t, withDevice, map[string]http.HandlerFunc{"POST /device/code": deviceResp(`{"device_code":"d","user_code":"ABCD","verification_uri":"javascript:alert(1)","interval":1,"expires_in":60}`)})
			return &DeviceFlow{Issuer: srv.URL, ClientID: "c"}
		}, phrase: "not an http(s) URL"},
		{name: "fail/incomplete response", flow: func() *DeviceFlow {
			srv := fakeIssuer(t, withDevice, map[string]http.HandlerFunc{"POST /device/code": deviceResp(`{"device_code":"d","verification_uri":"https://idp.example.com/device"}`)})
			return &DeviceFlow{Issuer: srv.URL, ClientID: "c"}
		}, phrase: "lacks device_code, user_code or verification_uri"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			shown := false
			raw, err := tt.flow().Login(t.Context(), func(string, string, string) { shown = true })
			if err == nil || raw != "" {
				t.Fatalf("Login = %q, %v; want error with %q", raw, err, tt.phrase)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "oidc: ") || !strings.Contains(msg, tt.phrase) {
				t.Fatalf("error %q: want prefix %q and phrase %q", msg, "oidc: ", tt.phrase)
			}
			if shown {
				t.Fatal("show called although the flow failed before polling")
			}
		})
	}
}

// TestDeviceFlowScopes checks the scopes sent to the device endpoint.
func TestDeviceFlowScopes(t *testing.T) {
	tests := []struct {
		name   string
		scopes []string
		want   string
	}{
		{name: "ok/default", want: "openid profile email groups"},
		{name: "ok/openid added", scopes: []string{"email"}, want: "openid email"},
		{name: "ok/as given", scopes: []string{"email", "openid"}, want: "email openid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := make(chan string, 1)
			srv := fakeIssuer(t, `{"issuer":"{{URL}}","token_endpoint":"{{URL}}/token","device_authorization_endpoint":"{{URL}}/device/code"}`,
				map[string]http.HandlerFunc{"POST /device/code": func(w http.ResponseWriter, r *http.Request) {
					got <- r.PostFormValue("scope") + "|" + r.PostFormValue("client_id")
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(http.StatusBadRequest)
					fmt.Fprint(w, `{"error":"invalid_scope"}`)
				}})
			d := &DeviceFlow{Issuer: srv.URL, ClientID: "cli", Scopes: tt.scopes}
			if _, err := d.Login(t.Context(), func(string, string, string) {}); err == nil || !strings.Contains(err.Error(), "invalid_scope") {
				t.Fatalf("Login error = %v, want invalid_scope", err)
			}
			if s := <-got; s != tt.want+"|cli" {
				t.Fatalf("sent %q, want %q", s, tt.want+"|cli")
			}
		})
	}
}
