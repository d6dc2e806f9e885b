package console

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"sync"
	"time"
)

// CookieName is the session cookie. The __Host- prefix makes browsers
// refuse it unless it is Secure, has Path=/ and no Domain, so no other host
// or plain-HTTP page can set it.
const CookieName = "__Host-sshca-console"

// maxSessions bounds the sessions kept; signing in beyond it ends the
// oldest.
const maxSessions = 10_000

// session is one signed-in person. Sessions live in the memory of the
// serving process: a restart signs everyone out.
type session struct {
	user     string
	groups   []string
	created  time.Time
	lastUsed time.Time
	csrf     string // the token every form of this session carries
}

// sessions holds sessions by the SHA-256 of their cookie value, so that
// the map never holds a usable credential.
type sessions struct {
	idle, max time.Duration
	mu        sync.Mutex
	m         map[[32]byte]*session
}

func newSessions(idle, max time.Duration) *sessions {
	return &sessions{idle: idle, max: max, m: map[[32]byte]*session{}}
}

func randomString() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// start makes a session for user and sets its cookie on w.
func (ss *sessions) start(w http.ResponseWriter, user string, groups []string, now time.Time) *session {
	id := randomString()
	s := &session{user: user, groups: groups, created: now, lastUsed: now, csrf: randomString()}
	ss.mu.Lock()
	ss.sweep(now)
	if len(ss.m) >= maxSessions {
		var oldest [32]byte
		var at time.Time
		for k, v := range ss.m {
			if at.IsZero() || v.created.Before(at) {
				oldest, at = k, v.created
			}
		}
		delete(ss.m, oldest)
	}
	ss.m[sha256.Sum256([]byte(id))] = s
	ss.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: id, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: int(ss.max / time.Second)})
	return s
}

// sweep drops ended sessions; ss.mu is held.
func (ss *sessions) sweep(now time.Time) {
	for k, s := range ss.m {
		if !ss.alive(s, now) {
			delete(ss.m, k)
		}
	}
}

func (ss *sessions) alive(s *session, now time.Time) bool {
	return now.Sub(s.lastUsed) < ss.idle && now.Sub(s.created) < ss.max
}

// get returns the live session of r's cookie, marking it used, or nil.
func (ss *sessions) get(r *http.Request, now time.Time) *session {
	ck, err := r.Cookie(CookieName)
	if err != nil || ck.Value == "" || len(ck.Value) > 128 {
		return nil
	}
	key := sha256.Sum256([]byte(ck.Value))
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.m[key]
	if !ok {
		return nil
	}
	if !ss.alive(s, now) {
		delete(ss.m, key)
		return nil
	}
	s.lastUsed = now
	c := *s
	return &c
}

// end ends r's session and clears its cookie.
func (ss *sessions) end(w http.ResponseWriter, r *http.Request) {
	if ck, err := r.Cookie(CookieName); err == nil {
		ss.mu.Lock()
		delete(ss.m, sha256.Sum256([]byte(ck.Value)))
		ss.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
}
