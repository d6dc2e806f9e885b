package oidc

// factor is one of the three classic authentication factor categories
// (NIST SP 800-63, ISO/IEC 29115).
type factor int

const (
	knowledge  factor = iota + 1 // something you know
	possession                   // something you have
	inherence                    // something you are
)

// amrFactors sorts the RFC 8176 section 2 method values by factor. Values
// that are not a factor on their own are absent and so ignored: "geo"
// (location), "rba" (risk-based), "user" (presence test), "wia" (Windows
// integrated: a session, not a method), "mca" (several channels, not several
// factors), as is anything unregistered.
var amrFactors = map[string]factor{
	"pwd": knowledge, // password
	"pin": knowledge, // PIN, e.g. unlocking a key
	"kba": knowledge, // knowledge-based questions

	"otp": possession, // one-time password
	"hwk": possession, // hardware-secured key (security key, TPM)
	"swk": possession, // software-secured key
	"sc":  possession, // smart card
	"sms": possession, // code sent by SMS
	"tel": possession, // confirmation by telephone call
	"pop": possession, // proof of possession of a key

	"fpt":    inherence, // fingerprint
	"face":   inherence, // facial recognition
	"iris":   inherence, // iris scan
	"retina": inherence, // retina scan
	"vbm":    inherence, // voice biometric
}

// HasMFA reports whether the token's amr claim shows multi-factor
// authentication. It is true when amr contains "mfa" (RFC 8176: the issuer
// asserts multiple factors), or when its methods span at least two of the
// factor categories knowledge (pwd, pin, kba), possession (otp, hwk, swk, sc,
// sms, tel, pop) and inherence (fpt, face, iris, retina, vbm). So
// ["pwd","otp"] and ["hwk","pin"] are MFA; ["pwd"], ["otp"], ["hwk"],
// ["otp","sms"] (two of one kind) and a missing amr are not. Values are
// compared exactly (RFC 8176 values are case-sensitive).
func (i *Identity) HasMFA() bool {
	var seen [inherence + 1]bool
	n := 0
	for _, m := range i.AMR {
		if m == "mfa" {
			return true
		}
		if f, ok := amrFactors[m]; ok && !seen[f] {
			seen[f] = true
			n++
		}
	}
	return n >= 2
}
