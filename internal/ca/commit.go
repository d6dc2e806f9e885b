package ca

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sshca/sshca/internal/store"
)

// Group commit. Concurrent Sign calls each sign their certificate with a
// pre-reserved serial, then hand the record and its audit entry to the
// committer, which writes everything that is waiting in one transaction (one
// fsync) and only then lets the callers return their certificates. While one
// batch commits, the next one gathers, so a busy service writes large
// batches and an idle one writes batches of one with no added delay.

// maxBatch bounds the items of one transaction.
const maxBatch = 1024

// commitTimeout bounds one batch transaction. Batches do not use a caller's
// context: one caller giving up must not abort the others' records.
const commitTimeout = 30 * time.Second

type pending struct {
	item store.BatchItem
	err  error
	done chan struct{}
}

type committer struct {
	mu      sync.Mutex
	queue   []*pending
	running bool // a goroutine is writing batches

	batches, items atomic.Uint64 // transactions written and items in them
}

// CommitStats reports how many group-commit transactions the authority has
// written and how many records they held (their ratio is the mean batch size).
func (a *Authority) CommitStats() (batches, items uint64) {
	return a.commits.batches.Load(), a.commits.items.Load()
}

// commit records item, batched with whatever else is waiting, and returns
// once it is durable (or refused: the item's own error, or the batch's).
func (c *committer) commit(ctx context.Context, st Store, item store.BatchItem) error {
	errs, err := c.commitAll(ctx, st, []store.BatchItem{item})
	if err != nil {
		return err
	}
	return errs[0]
}

// commitAll records items, batched with whatever else is waiting (a batch
// request's items together, unless maxBatch cuts them), and returns each
// item's error once all are durable or refused; err is set only when ctx
// ended first (the records may still be written).
func (c *committer) commitAll(ctx context.Context, st Store, items []store.BatchItem) ([]error, error) {
	ps := make([]*pending, len(items))
	for i := range items {
		ps[i] = &pending{item: items[i], done: make(chan struct{})}
	}
	c.mu.Lock()
	c.queue = append(c.queue, ps...)
	lead := !c.running
	c.running = true
	c.mu.Unlock()
	if lead {
		// The first caller writes the first batch itself (no hand-off for an
		// idle service); a queue left behind is drained by a goroutine.
		if c.writeBatch(st) {
			go c.drain(st)
		}
	}
	errs := make([]error, len(items))
	for i, p := range ps {
		select {
		case <-p.done:
			errs[i] = p.err
		case <-ctx.Done():
			// The records may still be written; the caller just stops waiting.
			return nil, ctx.Err()
		}
	}
	return errs, nil
}

func (c *committer) drain(st Store) {
	for c.writeBatch(st) {
	}
}

// writeBatch commits up to maxBatch waiting items and reports whether more
// are waiting; when none are, it clears running.
func (c *committer) writeBatch(st Store) bool {
	c.mu.Lock()
	n := min(len(c.queue), maxBatch)
	batch := c.queue[:n:n]
	c.queue = c.queue[n:]
	if len(c.queue) == 0 {
		c.queue = nil
	}
	c.mu.Unlock()

	if len(batch) > 0 {
		items := make([]store.BatchItem, len(batch))
		for i, p := range batch {
			items[i] = p.item
		}
		ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
		errs, err := st.CommitBatch(ctx, items)
		cancel()
		c.batches.Add(1)
		c.items.Add(uint64(len(items)))
		for i, p := range batch {
			switch {
			case err != nil:
				p.err = fmt.Errorf("ca: record batch of %d: %w", len(batch), err)
			case i < len(errs):
				p.err = errs[i]
			}
			close(p.done)
		}
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queue) == 0 {
		c.running = false
		return false
	}
	return true
}

// Serial blocks. A process reserves serials from the store in blocks and
// hands them out from memory; a block left unused when the process ends is
// skipped, never reused. Blocks start at one serial (a one-shot CLI wastes
// none) and double while they run out within a second, up to maxBlock; they
// halve again when one lasted more than ten seconds.

const maxBlock = 4096

type serialPool struct {
	mu       sync.Mutex
	next     uint64 // next serial to hand out
	end      uint64 // one past the block's last serial
	size     int    // size of the next block to reserve
	reserved time.Time
}

// take returns n consecutive fresh serials, first..first+n-1.
func (sp *serialPool) take(ctx context.Context, st Store, n int) (uint64, error) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.end-sp.next < uint64(n) {
		size := max(sp.size, 1)
		if !sp.reserved.IsZero() {
			switch since := time.Since(sp.reserved); {
			case since < time.Second:
				size = min(size*2, maxBlock)
			case since > 10*time.Second:
				size = max(size/2, 1)
			}
		}
		size = max(size, n)
		first, err := st.ReserveSerials(ctx, size)
		if err != nil {
			return 0, fmt.Errorf("ca: reserve serials: %w", err)
		}
		if first == 0 {
			return 0, errors.New("ca: store reserved serial 0")
		}
		sp.next, sp.end, sp.size, sp.reserved = first, first+uint64(size), size, time.Now()
	}
	first := sp.next
	sp.next += uint64(n)
	return first, nil
}
