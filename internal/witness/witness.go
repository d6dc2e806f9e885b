// Package witness keeps what one machine saw of the audit log outside the
// database, so that `sshca audit verify` can tell when the database's log
// was cut short or rewritten: it copies every entry this process commits to
// the audit file (service.audit_file, JSON lines for a log shipper), and
// keeps the highest entry committed (its sequence number and hash) in a
// head file in the home. It only records; comparing is audit's job, and it
// never reads or writes the database's own tables.
package witness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sshca/sshca/internal/atomicfile"
	"github.com/sshca/sshca/internal/audit"
)

// Head is the last audit entry known to have been committed.
type Head struct {
	Seq  uint64
	Hash string
}

// headMagic starts the head file.
const headMagic = "sshca-audit-head v1"

// ReadHead reads a head file; a missing file is the zero Head.
func ReadHead(path string) (Head, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return Head{}, nil
	}
	if err != nil {
		return Head{}, fmt.Errorf("audit head: %w", err)
	}
	return parseHead(path, data)
}

func parseHead(path string, data []byte) (Head, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return Head{}, nil
	}
	f := strings.Fields(string(data))
	if len(f) != 4 || f[0]+" "+f[1] != headMagic {
		return Head{}, fmt.Errorf("audit head %s: not a head file", path)
	}
	seq, err := strconv.ParseUint(f[2], 10, 64)
	if err != nil || seq == 0 || len(f[3]) != 64 {
		return Head{}, fmt.Errorf("audit head %s: not a head file", path)
	}
	return Head{Seq: seq, Hash: f[3]}, nil
}

func (h Head) marshal() []byte {
	return fmt.Appendf(nil, "%s %d %s\n", headMagic, h.Seq, h.Hash)
}

// Options configure Open.
type Options struct {
	// HeadFile is the head file (the home's audit.head); "" keeps none.
	HeadFile string
	// AuditFile receives every entry committed as a JSON line; "" for none.
	AuditFile string
	// Lookup returns the hash of entry seq in the database, "" when there
	// is no such entry. Before the head file moves on, the entry it names
	// is looked up: if the database no longer holds it unchanged (its tail
	// was cut, perhaps written anew), the head stays where it is and Notice
	// is told, so that audit verify still sees the difference. Nil skips
	// the check.
	Lookup func(ctx context.Context, seq uint64) (string, error)
	// Notice is told about entries that could not be recorded; nil drops it.
	Notice func(string)
	// Interval is the least time between two writes of the head file by the
	// background writer (default 200ms): under load it follows the log a
	// little behind, which only makes it a lower bound.
	Interval time.Duration
}

// Witness records the entries one process commits. Its methods are safe
// for concurrent use, and do nothing on a nil *Witness.
type Witness struct {
	o    Options
	file *os.File // the audit file, or nil

	mu      sync.Mutex
	pending Head // highest entry recorded, not yet in the head file
	closed  bool

	kick chan struct{}
	stop chan struct{}
	done chan struct{}
}

// Open opens the audit file (creating it 0600, appending) and starts the
// head file's writer. Close stops it.
func Open(o Options) (*Witness, error) {
	if o.Interval <= 0 {
		o.Interval = 200 * time.Millisecond
	}
	if o.Notice == nil {
		o.Notice = func(string) {}
	}
	w := &Witness{o: o, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	if o.AuditFile != "" {
		f, err := os.OpenFile(o.AuditFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("audit file: %w", err)
		}
		w.file = f
	}
	if o.HeadFile == "" {
		close(w.done)
	} else {
		go w.loop()
	}
	return w, nil
}

// Record takes one committed entry (store OnAudit): it is appended to the
// audit file at once, in one write so that lines of several processes never
// mix, and the head file is moved to it soon.
func (w *Witness) Record(e audit.Entry) {
	if w == nil {
		return
	}
	if w.file != nil {
		if _, err := w.file.Write(audit.MarshalLine(e)); err != nil {
			w.o.Notice(fmt.Sprintf("audit entry %d was committed but not written to the audit file: %v", e.Seq, err))
		}
	}
	if w.o.HeadFile == "" {
		return
	}
	w.mu.Lock()
	if e.Seq > w.pending.Seq && !w.closed {
		w.pending = Head{Seq: e.Seq, Hash: e.Hash}
	}
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Advance moves the head file to h now, unless it is already at or past it
// (audit verify records what it verified this way).
func (w *Witness) Advance(ctx context.Context, h Head) error {
	if w == nil || w.o.HeadFile == "" || h.Seq == 0 {
		return nil
	}
	return w.write(ctx, h)
}

// Close writes the last head, stops the writer and closes the audit file.
func (w *Witness) Close() error {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	already := w.closed
	w.closed = true
	w.mu.Unlock()
	if already {
		return nil
	}
	if w.o.HeadFile != "" {
		close(w.stop)
	}
	<-w.done
	if w.file != nil {
		return w.file.Close()
	}
	return nil
}

// loop writes the pending head whenever there is one, at most once per Interval.
func (w *Witness) loop() {
	defer close(w.done)
	t := time.NewTimer(w.o.Interval)
	defer t.Stop()
	for {
		select {
		case <-w.kick:
		case <-w.stop:
			w.flush()
			return
		}
		w.flush()
		t.Reset(w.o.Interval)
		select {
		case <-t.C:
		case <-w.stop:
			w.flush()
			return
		}
	}
}

// flush writes the pending head, if any.
func (w *Witness) flush() {
	w.mu.Lock()
	h := w.pending
	w.pending = Head{}
	w.mu.Unlock()
	if h.Seq == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.write(ctx, h); err != nil {
		w.o.Notice(err.Error())
	}
}

// write moves the head file forward to h, under the file's lock so that
// processes sharing the home never move it back.
func (w *Witness) write(ctx context.Context, h Head) error {
	f, err := lockHead(w.o.HeadFile)
	if err != nil {
		return err
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return fmt.Errorf("audit head: %w", err)
	}
	cur, err := parseHead(w.o.HeadFile, data)
	if err != nil {
		return err
	}
	// The entry the head names must still be in the database as it was:
	// else the log was cut (and perhaps written anew) since, and the head
	// stays where it is for audit verify to report.
	if cur.Seq > 0 && w.o.Lookup != nil {
		hash, err := w.o.Lookup(ctx, cur.Seq)
		if err != nil {
			return fmt.Errorf("audit head: look up entry %d: %w", cur.Seq, err)
		}
		if hash != cur.Hash {
			why := "no longer holds it"
			if hash != "" {
				why = "holds another entry there"
			}
			return fmt.Errorf("audit head: %s records entry %d, but the database %s: the log was cut or rewritten, so the head stays there (run sshca audit verify)", w.o.HeadFile, cur.Seq, why)
		}
	}
	if cur.Seq >= h.Seq {
		// Another process got further; only ever forward.
		return nil
	}
	return atomicfile.Write(w.o.HeadFile, h.marshal(), 0o600)
}

// lockHead opens the head file (creating it empty) and locks it. The file
// is replaced by rename, so after the lock is taken it must still be the
// file at path; if another process replaced it meanwhile, start again.
func lockHead(path string) (*os.File, error) {
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("audit head: %w", err)
		}
		if err := lockFile(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("audit head: lock %s: %w", path, err)
		}
		held, err1 := f.Stat()
		now, err2 := os.Stat(path)
		if err1 == nil && err2 == nil && os.SameFile(held, now) {
			return f, nil
		}
		f.Close()
		if err1 != nil {
			return nil, fmt.Errorf("audit head: %w", err1)
		}
		if err2 != nil && !errors.Is(err2, os.ErrNotExist) {
			return nil, fmt.Errorf("audit head: %w", err2)
		}
	}
}
