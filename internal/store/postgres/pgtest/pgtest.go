// Package pgtest starts a throwaway PostgreSQL server for tests: initdb into
// a temporary directory, then the postgres binary as a child process that
// listens only on 127.0.0.1 (and a unix socket in that directory) and dies
// with the test binary. Each test gets its own database on that server. It is
// test infrastructure only: production code never imports it, and it never
// touches a server it did not start.
//
// Use it from a test package like this:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestX(t *testing.T) {
//		url := pgtest.NewDatabase(t) // fresh, empty database
//		...
//	}
package pgtest

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/sshca/sshca/internal/testkit"
)

// ErrNoPostgres means no PostgreSQL server binaries were found.
var ErrNoPostgres = errors.New("pgtest: PostgreSQL binaries (initdb, postgres) not found")

// Server is a running throwaway PostgreSQL server.
type Server struct {
	dir     string // temporary directory: data/, the unix socket, postgres.log
	url     string // superuser URL of the "postgres" database
	cmd     *exec.Cmd
	done    chan struct{} // closed when the postmaster has exited
	admin   *sql.DB
	n       atomic.Int64 // databases created so far
	version int          // server_version_num, e.g. 150013

	stopOnce sync.Once
	stopErr  error
}

// FindBinDir returns the directory holding the newest installed initdb and
// postgres binaries, or ErrNoPostgres. Distribution directories
// (/usr/lib/postgresql/N/bin, /usr/pgsql-N/bin) win over PATH because
// Debian's /usr/bin and /usr/local/bin entries may be wrappers that refuse
// to run without a cluster configuration.
func FindBinDir() (string, error) {
	var dirs []string
	for _, pattern := range []string{"/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin", "/usr/local/pgsql/bin"} {
		m, _ := filepath.Glob(pattern)
		dirs = append(dirs, m...)
	}
	version := func(dir string) float64 {
		base := filepath.Base(filepath.Dir(dir))
		v, _ := strconv.ParseFloat(strings.TrimPrefix(base, "pgsql-"), 64)
		return v
	}
	sort.SliceStable(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	if p, err := exec.LookPath("postgres"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			dirs = append(dirs, filepath.Dir(real))
		}
	}
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", ErrNoPostgres
}

func isExec(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// StartServer initialises a new cluster in a temporary directory and starts
// it. The caller must call Stop; if the calling process dies first, the
// kernel sends the postmaster SIGQUIT (immediate shutdown), but the directory
// is left behind. The server trades durability for speed (fsync off); see
// StartServerWith for one that does not.
func StartServer(ctx context.Context) (*Server, error) {
	return StartServerWith(ctx, Options{})
}

// Options change how StartServerWith runs the server.
type Options struct {
	// Durable keeps PostgreSQL's crash-safety defaults (fsync,
	// synchronous_commit, full_page_writes on, and a synced initdb), so that
	// a commit costs what it costs in production. Benchmarks want it; tests
	// do not.
	Durable bool
}

// StartServerWith is StartServer with options.
func StartServerWith(ctx context.Context, opts Options) (*Server, error) {
	bin, err := FindBinDir()
	if err != nil {
		return nil, err
	}
	removeStale(os.TempDir(), time.Now())
	dir, err := os.MkdirTemp("", "sshca-pg-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	cred, err := credential(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	data := filepath.Join(dir, "data")
	initArgs := []string{"-D", data, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C"}
	if !opts.Durable {
		initArgs = append(initArgs, "--no-sync")
	}
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), initArgs...)
	initdb.Dir = dir
	initdb.Env = cleanEnv()
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pgtest: initdb: %w\n%s", err, out)
	}
	// A free port found by listening can be taken before postgres binds it;
	// retry with another one in that case.
	for attempt := 0; ; attempt++ {
		s, err := start(ctx, bin, dir, cred, opts)
		if err == nil {
			return s, nil
		}
		if attempt < 3 && strings.Contains(err.Error(), "in use") {
			continue
		}
		os.RemoveAll(dir)
		return nil, err
	}
}

// removeStale deletes directories left by test binaries that died without
// Stop: their postmaster ran (postmaster.opts exists) and has shut down
// (postmaster.pid is gone), and nothing touched them for ten minutes.
func removeStale(tmp string, now time.Time) {
	dirs, _ := filepath.Glob(filepath.Join(tmp, "sshca-pg-*"))
	for _, d := range dirs {
		fi, err := os.Stat(d)
		if err != nil || !fi.IsDir() || now.Sub(fi.ModTime()) < 10*time.Minute {
			continue
		}
		data := filepath.Join(d, "data")
		if _, err := os.Stat(filepath.Join(data, "postmaster.opts")); err != nil {
			continue
		}
		if _, err := os.Lstat(filepath.Join(data, "postmaster.pid")); !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		_ = os.RemoveAll(d)
	}
}

// credential returns who to run the server as. PostgreSQL refuses to run as
// root, so under root the directory is handed to the postgres OS user.
func credential(dir string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root needs a postgres OS user: %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("pgtest: postgres user ids: %w", err)
	}
	if err := os.Chown(dir, int(uid), int(gid)); err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// cleanEnv drops PG* variables so a developer's settings cannot redirect
// the binaries to another cluster.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return append(env, "LC_ALL=C")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func start(ctx context.Context, bin, dir string, cred *syscall.Credential, opts Options) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("pgtest: find a free port: %w", err)
	}
	logPath := filepath.Join(dir, "postgres.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	defer logf.Close()
	args := []string{
		"-D", filepath.Join(dir, "data"),
		"-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=" + dir,
		"-c", "shared_buffers=16MB",
		"-c", "max_connections=100",
		"-c", "log_min_messages=warning",
	}
	if !opts.Durable {
		// Durability is pointless for a server that lives as long as a
		// test binary; turning it off keeps the tests fast on a shared
		// machine.
		args = append(args,
			"-c", "fsync=off",
			"-c", "synchronous_commit=off",
			"-c", "full_page_writes=off",
		)
	}
	cmd := exec.Command(filepath.Join(bin, "postgres"), args...)
	cmd.Dir = dir
	cmd.Env = cleanEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	// Pdeathsig: if the test binary dies without calling Stop, the kernel
	// tells the postmaster to shut down immediately (pg_ctl would detach the
	// server from us, so the postmaster is started directly). Setpgid keeps a
	// terminal's ^C from reaching it before Stop does.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT, Setpgid: true}
	s := &Server{
		dir:  dir,
		url:  fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port),
		cmd:  cmd,
		done: make(chan struct{}),
	}
	// The parent-death signal fires when the forking OS thread exits, not
	// the process, so fork from a locked thread that lives exactly as long
	// as the postmaster (the goroutine never unlocks, so its thread ends
	// with it).
	started := make(chan error, 1)
	go func() {
		defer close(s.done)
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("pgtest: start postgres: %w", err)
	}
	if err := s.waitReady(ctx); err != nil {
		s.kill()
		log, _ := os.ReadFile(logPath)
		return nil, fmt.Errorf("pgtest: postgres did not start: %w\n%s", err, bytes.TrimSpace(log))
	}
	return s, nil
}

func (s *Server) waitReady(ctx context.Context) error {
	cfg, err := pgx.ParseConfig(s.url)
	if err != nil {
		return err
	}
	s.admin = stdlib.OpenDB(*cfg)
	s.admin.SetMaxOpenConns(2)
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		err := s.admin.QueryRowContext(pctx, "SHOW server_version_num").Scan(&s.version)
		pcancel()
		if err == nil {
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("postgres exited (%v)", s.cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// URL returns the superuser URL of the server's "postgres" database.
func (s *Server) URL() string { return s.url }

// Dir returns the server's temporary directory (data/, unix socket, postgres.log).
func (s *Server) Dir() string { return s.dir }

// NewDatabase creates a new empty database and returns its URL.
func (s *Server) NewDatabase(ctx context.Context) (string, error) {
	name := fmt.Sprintf("sshca_test_%d", s.n.Add(1))
	create := "CREATE DATABASE " + name
	if s.version >= 150000 {
		// With fsync off, copying files is about twice as fast as 15's
		// default of WAL-logging every block; before 15 it is the only way.
		create += " STRATEGY FILE_COPY"
	}
	if _, err := s.admin.ExecContext(ctx, create); err != nil {
		return "", fmt.Errorf("pgtest: create database %s: %w", name, err)
	}
	return strings.Replace(s.url, "/postgres?", "/"+name+"?", 1), nil
}

// DropDatabase drops a database made by NewDatabase, closing its connections.
func (s *Server) DropDatabase(ctx context.Context, url string) error {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	if !strings.HasPrefix(cfg.Database, "sshca_test_") {
		return fmt.Errorf("pgtest: refusing to drop database %q not made by NewDatabase", cfg.Database)
	}
	if _, err := s.admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+cfg.Database+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("pgtest: drop database %s: %w", cfg.Database, err)
	}
	return nil
}

// Stop shuts the server down (fast shutdown, then SIGKILL after 10s) and
// removes its directory. It is safe to call more than once.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		if s.admin != nil {
			s.admin.Close()
		}
		_ = s.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			s.kill()
		}
		s.stopErr = os.RemoveAll(s.dir)
	})
	return s.stopErr
}

func (s *Server) kill() {
	if s.admin != nil {
		s.admin.Close()
	}
	_ = s.cmd.Process.Kill()
	<-s.done
}

// shared is the one server of this test binary. It is package state by
// necessity: TestMain, Start and NewDatabase must find the same server, and
// a test binary is one process.
var shared struct {
	once sync.Once
	srv  *Server
	err  error
}

// Start returns the superuser URL of this test binary's shared server,
// starting it on first use. Without PostgreSQL binaries the test is skipped,
// or fails when the environment sets CI=true.
func Start(t testing.TB) string {
	t.Helper()
	return server(t).URL()
}

func server(t testing.TB) *Server {
	t.Helper()
	shared.once.Do(func() {
		shared.srv, shared.err = StartServer(context.Background())
	})
	if shared.err != nil {
		skipOrFail(t, shared.err)
	}
	return shared.srv
}

// skipOrFail ends the test: a skip when PostgreSQL is simply not installed
// (unless under CI, where a missing tool is a failure: testkit.SkipOrFatal),
// a failure otherwise.
func skipOrFail(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, ErrNoPostgres) {
		testkit.SkipOrFatal(t, "%v", err)
	}
	t.Fatal(err)
}

// NewDatabase creates a fresh, empty database on the shared server and
// returns its URL; the database is dropped when t ends.
func NewDatabase(t testing.TB) string {
	t.Helper()
	s := server(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url, err := s.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.DropDatabase(ctx, url); err != nil {
			t.Error(err)
		}
	})
	return url
}

// Main runs the tests and then stops the shared server, if one was started.
// Call it from TestMain; returning from TestMain makes the testing package
// exit with m.Run's code.
func Main(m *testing.M) {
	m.Run()
	if shared.srv != nil {
		_ = shared.srv.Stop()
	}
}
