// Package home creates and opens an sshca home directory: the policy file
// (sshca.yaml), the CA key files (keys/), and the embedded database
// (sshca.db). It wires them into a ca.Authority; it decides no policy itself
// and never writes a decrypted copy of a CA key.
package home

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/config"
	"github.com/sshca/sshca/internal/signer"
	"github.com/sshca/sshca/internal/store"
	"github.com/sshca/sshca/internal/store/postgres"
	"github.com/sshca/sshca/internal/store/sqlite"
	"github.com/sshca/sshca/internal/store/sqlstore"
	"github.com/sshca/sshca/internal/witness"
)

// File names inside a home.
const (
	ConfigFile = "sshca.yaml"
	DBFile     = "sshca.db"
	KeyDir     = "keys"
)

// CATypes are the two CAs every home has.
var caTypes = []string{"user", "host"}

// ErrExists is returned by Init when the home already holds a CA.
var ErrExists = errors.New("home already contains a CA")

// InitOptions configure Init.
type InitOptions struct {
	KeyType    string // default ed25519
	Passphrase []byte // encrypts the CA keys when non-empty
	Actor      string
	Rand       io.Reader
	Now        func() time.Time
	// Database is a PostgreSQL URL; empty means the embedded SQLite file.
	Database string
	// Notice is told what Init changed that the operator did not ask for
	// (an existing directory made private); nil discards it.
	Notice func(string)
}

// openStore opens PostgreSQL when url is set, else the home's SQLite file.
func openStore(ctx context.Context, dir, url string) (*sqlstore.DB, error) {
	if url != "" {
		return postgres.Open(ctx, url)
	}
	return sqlite.Open(ctx, filepath.Join(dir, DBFile))
}

func discard(string) {}

// Init creates a new home at dir: policy file, user and host CA keys, database.
// It refuses a directory that already holds any of them.
func Init(ctx context.Context, dir string, o InitOptions) error {
	if o.KeyType == "" {
		o.KeyType = "ed25519"
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Notice == nil {
		o.Notice = discard
	}
	if len(o.Passphrase) > 0 {
		if err := signer.CheckNewPassphrase(o.Passphrase); err != nil {
			return err
		}
	}
	for _, name := range []string{ConfigFile, DBFile, KeyDir} {
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			return fmt.Errorf("%s: %w (%s exists)", dir, ErrExists, name)
		}
	}
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return fmt.Errorf("create home: %w", err)
	}
	if err := makeDirPrivate(dir, o.Notice); err != nil {
		return err
	}
	if err := os.Mkdir(filepath.Join(dir, KeyDir), dirMode); err != nil {
		return fmt.Errorf("create home: %w", err)
	}
	if _, _, err := createSecretsKey(secretsKeyPath(dir), o.Rand); err != nil {
		return err
	}
	var keys []store.CAKey
	for _, t := range caTypes {
		k, err := NewKeyFile(dir, t, 1, o.KeyType, o.Passphrase, o.Rand)
		if err != nil {
			return err
		}
		k.State, k.CreatedAt = store.StateActive, o.Now()
		keys = append(keys, k)
	}
	if err := writeNew(filepath.Join(dir, ConfigFile), []byte(config.Example), 0o600); err != nil {
		return err
	}
	st, err := openStore(ctx, dir, o.Database)
	if err != nil {
		return err
	}
	defer st.Close()
	w, err := openWitness(dir, nil, st, o.Notice)
	if err != nil {
		return err
	}
	defer w.Close()
	if existing, err := st.ListCAKeys(ctx, "user"); err != nil {
		return err
	} else if len(existing) > 0 {
		return fmt.Errorf("%w: the database already holds CA keys", ErrExists)
	}
	for _, k := range keys {
		ev := audit.Entry{Time: o.Now(), Actor: o.Actor, Action: audit.ActionInit, Outcome: "ok",
			Details: map[string]string{"ca": k.CAType, "generation": "1", "fingerprint": k.Fingerprint, "key_type": k.KeyType, "encrypted": fmt.Sprint(len(o.Passphrase) > 0)}}
		if err := st.AddCAKey(ctx, k, ev); err != nil {
			return err
		}
	}
	return nil
}

func writeNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return f.Close()
}

// Options configure Open.
type Options struct {
	// Passphrase returns the passphrase of encrypted CA keys; it is called at
	// most once, and only when an encrypted key is needed.
	Passphrase func() ([]byte, error)
	Now        func() time.Time
	Rand       io.Reader
	// Database overrides the policy's database URL (from --database or
	// SSHCA_DATABASE); empty keeps the policy's choice.
	Database string
	// AgentSock is the ssh-agent socket for CA keys held by an agent
	// (usually $SSH_AUTH_SOCK).
	AgentSock string
	// Notice is told what opening changed that the operator should know
	// of (modes tightened, a secrets key created, secrets encrypted); nil
	// discards it.
	Notice func(string)
}

// Home is an opened CA home.
type Home struct {
	Dir       string
	Config    *config.Config
	Store     store.ServiceStore
	Authority *ca.Authority
	// Witness copies every audit entry the store commits to the audit file
	// and the home's head file (see HeadFile).
	Witness *witness.Witness
}

// Open opens an existing home: it loads and validates the policy and opens the
// database. CA private keys are opened only when first used.
func Open(ctx context.Context, dir string, o Options) (*Home, error) {
	if _, err := os.Stat(filepath.Join(dir, ConfigFile)); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s is not an sshca home (no %s); run `sshca init` first", dir, ConfigFile)
		}
		return nil, err
	}
	cfg, err := config.Load(filepath.Join(dir, ConfigFile))
	if err != nil {
		return nil, err
	}
	dbURL := cfg.Database
	if o.Database != "" {
		dbURL = o.Database
	}
	if dbURL == "" {
		if _, err := os.Stat(filepath.Join(dir, DBFile)); err != nil {
			return nil, fmt.Errorf("%s is not an sshca home (no %s); run `sshca init` first", dir, DBFile)
		}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.Notice == nil {
		o.Notice = discard
	}
	// Whoever made them, and under whatever umask, the home and keys/ are
	// 0700 and the database files 0600 once sshca has opened the home.
	for _, d := range []string{dir, filepath.Join(dir, KeyDir)} {
		if err := makeDirPrivate(d, o.Notice); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	if dbURL == "" {
		if err := makeDBPrivate(filepath.Join(dir, DBFile), o.Notice); err != nil {
			return nil, err
		}
	}
	db, err := openStore(ctx, dir, dbURL)
	if err != nil {
		return nil, err
	}
	if err := checkHasCA(ctx, db, dbURL); err != nil {
		db.Close()
		return nil, err
	}
	w, err := openWitness(dir, cfg, db, o.Notice)
	if err != nil {
		db.Close()
		return nil, err
	}
	st, err := encryptStore(ctx, dir, db, o.Rand, o.Notice)
	if err != nil {
		w.Close()
		db.Close()
		return nil, err
	}
	h := &Home{Dir: dir, Config: cfg, Store: st, Witness: w}
	var pass []byte
	var passErr error
	passDone := false
	h.Authority = &ca.Authority{
		Roles:    cfg.PolicyRoles(),
		Backdate: time.Duration(cfg.Backdate),
		Store:    st,
		Now:      o.Now,
		Rand:     o.Rand,
		LoadKey: func(ctx context.Context, k store.CAKey) (ssh.Signer, error) {
			if k.Signer == "agent" {
				return agentSigner(o.AgentSock, k)
			}
			if k.Signer != "file" {
				return nil, fmt.Errorf("%s CA generation %d uses signer %q, which this command cannot open", k.CAType, k.Generation, k.Signer)
			}
			path := filepath.Join(dir, KeyDir, k.File)
			data, err := readKeyFile(path)
			if err != nil {
				return nil, err
			}
			if !signer.IsEncrypted(data) {
				return signer.ParsePrivate(data, nil)
			}
			if !passDone {
				passDone = true
				if o.Passphrase == nil {
					passErr = signer.ErrPassphraseNeeded
				} else {
					pass, passErr = o.Passphrase()
				}
			}
			if passErr != nil {
				return nil, passErr
			}
			return signer.ParsePrivate(data, pass)
		},
	}
	return h, nil
}

// readKeyFile reads a CA private key, refusing one that others can read.
func readKeyFile(path string) ([]byte, error) {
	if err := checkKeyMode(path); err != nil {
		return nil, err
	}
	return os.ReadFile(path)
}

// checkKeyMode refuses a CA private key file that group or others can read.
func checkKeyMode(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("CA key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("CA key %s has mode %04o; it must not be readable by group or others (chmod 600)", path, fi.Mode().Perm())
	}
	return nil
}

// CheckKeyFiles refuses the private key files of every live CA generation
// (next, active and retiring, of both CAs) that group or others can read.
// Servers trust all of them, so a readable one must be treated as leaked
// whether or not it signs today; the service checks them before it starts.
func (h *Home) CheckKeyFiles(ctx context.Context) error {
	for _, t := range caTypes {
		keys, err := h.Store.ListCAKeys(ctx, t)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if k.Signer != "file" || k.State == store.StateRetired || k.State == store.StateRevoked {
				continue
			}
			if err := checkKeyMode(filepath.Join(h.Dir, KeyDir, k.File)); err != nil {
				return err
			}
		}
	}
	return nil
}

// Close closes the database.
func (h *Home) Close() error {
	// The witness first: its last head write looks the entry up.
	err := h.Witness.Close()
	return errors.Join(err, h.Store.Close())
}

// agentSigner opens a CA key held by the ssh-agent at sock.
func agentSigner(sock string, k store.CAKey) (ssh.Signer, error) {
	if sock == "" {
		return nil, fmt.Errorf("%s CA generation %d is held by ssh-agent, but SSH_AUTH_SOCK is not set", k.CAType, k.Generation)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k.PublicKey))
	if err != nil {
		return nil, fmt.Errorf("%s CA generation %d: bad public key: %w", k.CAType, k.Generation, err)
	}
	conn, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("ssh-agent: %w", err)
	}
	// The connection stays open for the life of the process: the signer uses it.
	return signer.FromAgent(agent.NewClient(conn), pub)
}

// NewKeyFile creates the private key file of a new generation of caType in
// the home and returns its record (state and times left to the caller).
func NewKeyFile(dir, caType string, gen int, keyType string, passphrase []byte, rnd io.Reader) (store.CAKey, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	priv, err := signer.Generate(keyType, rnd)
	if err != nil {
		return store.CAKey{}, err
	}
	s, err := signer.FromKey(priv)
	if err != nil {
		return store.CAKey{}, err
	}
	name := fmt.Sprintf("%s-ca-%d", caType, gen)
	pemBytes, err := signer.MarshalPrivate(priv, fmt.Sprintf("sshca %s CA generation %d", caType, gen), passphrase)
	if err != nil {
		return store.CAKey{}, err
	}
	k := store.CAKey{CAType: caType, Generation: gen, KeyType: keyType, Fingerprint: signer.Fingerprint(s.PublicKey()),
		PublicKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey()))), Signer: "file", File: name}
	path := filepath.Join(dir, KeyDir, name)
	if err := writeNew(path, pemBytes, 0o600); err != nil {
		return store.CAKey{}, err
	}
	if err := writeNew(path+".pub", []byte(k.PublicKey+" sshca-"+name+"\n"), 0o644); err != nil {
		return store.CAKey{}, err
	}
	return k, nil
}

// KeysEncrypted reports whether the home's existing CA key files are encrypted.
func KeysEncrypted(dir string, keys []store.CAKey) bool {
	for _, k := range keys {
		if k.Signer != "file" {
			continue
		}
		if data, err := os.ReadFile(filepath.Join(dir, KeyDir, k.File)); err == nil && signer.IsEncrypted(data) {
			return true
		}
	}
	return false
}
