package oidc

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"
	"unicode"

	"golang.org/x/oauth2"
)

// Errors returned by DeviceFlow.Login; test with errors.Is.
var (
	// ErrAccessDenied means the user (or the issuer's policy) refused the
	// request on the verification page.
	ErrAccessDenied = errors.New("oidc: access denied at the issuer")
	// ErrDeviceExpired means the user code expired before it was approved.
	ErrDeviceExpired = errors.New("oidc: device code expired before approval")
)

// DefaultScopes are requested when DeviceFlow.Scopes is empty. "groups" is
// not standard; issuers that reject unknown scopes need Scopes set.
var DefaultScopes = []string{"openid", "profile", "email", "groups"}

// DeviceFlow obtains an ID token with the OAuth 2.0 device authorization
// grant (RFC 8628): the user opens a URL on any device, enters a short code,
// logs in there, and this side polls until the issuer answers.
type DeviceFlow struct {
	// Issuer is the issuer URL (https, or http for a loopback host).
	Issuer string
	// ClientID is the public client registered for sshca login.
	ClientID string
	// ClientSecret is sent when set; some issuers (Google) give one even to
	// clients that cannot keep it secret.
	ClientSecret string
	// Scopes to request; default DefaultScopes. "openid" is added when missing.
	Scopes []string
	// HTTPClient is used for every request; default a client with a timeout
	// per request.
	HTTPClient *http.Client
}

// Login runs the device flow: discovery, the device authorization request,
// show (which must display the URI and the code to the user, and return
// promptly), then polling of the token endpoint at the interval the issuer
// asks for (slower when it says slow_down) until the user approves, denies,
// the code expires or ctx ends. It returns the raw ID token of the token
// response; verifying it is the service's job.
//
// The verification URIs and user code come from the issuer; Login refuses
// them if they contain control characters (they are meant for a terminal)
// or if a URI is not http(s).
func (d *DeviceFlow) Login(ctx context.Context, show func(verificationURI, userCode, verificationURIComplete string)) (rawIDToken string, err error) {
	if d.ClientID == "" {
		return "", errors.New("oidc: device flow: client ID required")
	}
	if err := checkURL("issuer", d.Issuer); err != nil {
		return "", err
	}
	client := d.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: fetchTimeout}
	}
	p, err := discover(ctx, client, d.Issuer)
	if err != nil {
		return "", err
	}
	ep := p.Endpoint()
	if ep.DeviceAuthURL == "" {
		return "", fmt.Errorf("oidc: issuer %q has no device_authorization_endpoint", d.Issuer)
	}
	if err := checkURL("device_authorization_endpoint", ep.DeviceAuthURL); err != nil {
		return "", err
	}
	if err := checkURL("token_endpoint", ep.TokenURL); err != nil {
		return "", err
	}
	scopes := d.Scopes
	if len(scopes) == 0 {
		scopes = DefaultScopes
	}
	if !slices.Contains(scopes, "openid") {
		scopes = append([]string{"openid"}, scopes...)
	}
	cfg := &oauth2.Config{
		ClientID:     d.ClientID,
		ClientSecret: d.ClientSecret,
		Scopes:       scopes,
		Endpoint: oauth2.Endpoint{
			DeviceAuthURL: ep.DeviceAuthURL,
			TokenURL:      ep.TokenURL,
			// A public client: credentials in the form, and no probing of
			// Basic auth first (which would double every poll).
			AuthStyle: oauth2.AuthStyleInParams,
		},
	}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, client)

	da, err := cfg.DeviceAuth(ctx)
	if err != nil {
		return "", fmt.Errorf("oidc: device authorization: %w", err)
	}
	if da.DeviceCode == "" || da.UserCode == "" || da.VerificationURI == "" {
		return "", errors.New("oidc: device authorization: response lacks device_code, user_code or verification_uri")
	}
	if err := checkShown(da); err != nil {
		return "", err
	}
	show(da.VerificationURI, da.UserCode, da.VerificationURIComplete)

	tok, err := cfg.DeviceAccessToken(ctx, da)
	if err != nil {
		return "", deviceError(ctx, da, err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return "", errors.New("oidc: token response has no id_token (is the openid scope allowed for this client?)")
	}
	return raw, nil
}

// deviceError names the RFC 8628 section 3.5 outcomes.
func deviceError(ctx context.Context, da *oauth2.DeviceAuthResponse, err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		switch re.ErrorCode {
		case "access_denied":
			return ErrAccessDenied
		case "expired_token":
			return ErrDeviceExpired
		}
		return fmt.Errorf("oidc: device token: %w", err)
	}
	// DeviceAccessToken gives up with DeadlineExceeded at the code's expiry.
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil && !da.Expiry.IsZero() && !time.Now().Before(da.Expiry) {
		return ErrDeviceExpired
	}
	return fmt.Errorf("oidc: device token: %w", err)
}

// checkShown refuses issuer-supplied text that could drive a terminal.
func checkShown(da *oauth2.DeviceAuthResponse) error {
	for _, f := range []struct{ name, v string }{
		{"user_code", da.UserCode},
		{"verification_uri", da.VerificationURI},
		{"verification_uri_complete", da.VerificationURIComplete},
	} {
		for _, r := range f.v {
			if unicode.IsControl(r) || r == unicode.ReplacementChar || unicode.Is(unicode.Bidi_Control, r) {
				return fmt.Errorf("oidc: device authorization: %s contains control characters", f.name)
			}
		}
	}
	for _, u := range []string{da.VerificationURI, da.VerificationURIComplete} {
		if u == "" {
			continue
		}
		if err := checkHTTPURL(u); err != nil {
			return err
		}
	}
	return nil
}

// checkHTTPURL requires an absolute http(s) URL, the only kind a user
// should be told to open.
func checkHTTPURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("oidc: device authorization: verification URI %s is not an http(s) URL", clip(raw))
	}
	return nil
}
