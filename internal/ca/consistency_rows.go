package ca

import (
	"cmp"
	"slices"
)

// A rowTable is what a ConsistencyLog keeps of the rows of one table whose
// rows are many and numbered (certificates by serial, revocations by ID):
// for each, the last entry that made it (an issuance; a revocation not
// pruned since) and the seal in force, in 40 bytes a row (a Go map of the
// same takes about three times that). It is a slice sorted by number,
// which a log whose numbers rise (as sshca reserves serials and the
// database numbers revocations) fills by appending, and a tail of numbers
// that came late (lower than one already seen: concurrent batches commit
// out of order), merged into the slice when it grows long and before
// Check looks rows up.
type rowTable struct {
	sorted   []rowEntry
	lateList []rowEntry
	late     map[uint64]int    // number -> index in lateList
	split    map[uint64]uint64 // number -> the entry that made it, when that is not the entry of the seal in force (rowSplit)
}

// rowEntry is one row: a certificate's serial or a revocation's ID (as
// uint64(id)) in serial.
type rowEntry struct {
	serial uint64
	// seq is the entry of the seal in force (rowSealed), else of the
	// entry that made the row (rowMade); see madeSeq.
	seq    uint64
	digest [16]byte // the seal's row digest (sealDigestKept)
	flags  uint8    // none: as if the row were not there
}

// rowSeal returns the seal in force of c (rowSealed).
func (c *rowEntry) rowSeal() rowSeal {
	return rowSeal{seq: c.seq, digest: c.digest, flags: c.flags & sealDigestKept}
}

// grow makes room for n serials.
func (t *rowTable) grow(n int) { t.sorted = slices.Grow(t.sorted, n) }

// find returns the entry of serial, or nil.
func (t *rowTable) find(serial uint64) *rowEntry {
	n := len(t.sorted)
	if n == 0 || serial > t.sorted[n-1].serial {
		return nil // late serials are lower than one in sorted
	}
	if t.sorted[n-1].serial == serial {
		return &t.sorted[n-1]
	}
	if i, ok := slices.BinarySearchFunc(t.sorted, serial, cmpSerial); ok {
		return &t.sorted[i]
	}
	if i, ok := t.late[serial]; ok {
		return &t.lateList[i]
	}
	return nil
}

func cmpSerial(c rowEntry, serial uint64) int { return cmp.Compare(c.serial, serial) }

// get returns the entry of serial, adding an empty one if there is none.
// The pointer is good until the next get.
func (t *rowTable) get(serial uint64) *rowEntry {
	if c := t.find(serial); c != nil {
		return c
	}
	if n := len(t.sorted); n == 0 || serial > t.sorted[n-1].serial {
		t.sorted = append(t.sorted, rowEntry{serial: serial})
		return &t.sorted[n]
	}
	if t.late == nil {
		t.late = map[uint64]int{}
	}
	t.late[serial] = len(t.lateList)
	t.lateList = append(t.lateList, rowEntry{serial: serial})
	if len(t.lateList) >= max(4096, len(t.sorted)/16) {
		t.merge()
		return t.find(serial)
	}
	return &t.lateList[len(t.lateList)-1]
}

// merge moves the late serials into sorted, merging from the end so that
// nothing but the room for them is allocated.
func (t *rowTable) merge() {
	if len(t.lateList) == 0 {
		return
	}
	late := t.lateList
	slices.SortFunc(late, func(a, b rowEntry) int { return cmp.Compare(a.serial, b.serial) })
	i := len(t.sorted) - 1
	t.sorted = append(t.sorted, make([]rowEntry, len(late))...)
	for j, k := len(late)-1, len(t.sorted)-1; j >= 0; k-- {
		if i >= 0 && t.sorted[i].serial > late[j].serial {
			t.sorted[k] = t.sorted[i]
			i--
		} else {
			t.sorted[k] = late[j]
			j--
		}
	}
	t.lateList, t.late = nil, nil
}

// madeSeq returns the entry that made c (rowMade).
func (t *rowTable) madeSeq(c *rowEntry) uint64 {
	if c.flags&rowSplit != 0 {
		return t.split[c.serial]
	}
	return c.seq
}

func (t *rowTable) setSplit(c *rowEntry, issueSeq uint64) {
	if t.split == nil {
		t.split = map[uint64]uint64{}
	}
	t.split[c.serial] = issueSeq
	c.flags |= rowSplit
}

func (t *rowTable) clearSplit(c *rowEntry) {
	if c.flags&rowSplit != 0 {
		delete(t.split, c.serial)
		c.flags &^= rowSplit
	}
}

// seal records s as the seal in force of serial's row.
func (t *rowTable) seal(serial uint64, s rowSeal) {
	c := t.get(serial)
	if c.flags&rowMade != 0 {
		if is := t.madeSeq(c); is != s.seq {
			t.setSplit(c, is)
		} else {
			t.clearSplit(c)
		}
	}
	c.seq, c.digest = s.seq, s.digest
	c.flags = c.flags&^sealDigestKept | s.flags&sealDigestKept | rowSealed
}

// unseal records that serial's row was deleted through sshca.
func (t *rowTable) unseal(serial uint64) {
	c := t.find(serial)
	if c == nil || c.flags&rowSealed == 0 {
		return
	}
	if c.flags&rowMade != 0 {
		c.seq = t.madeSeq(c)
		t.clearSplit(c)
	} else {
		c.seq = 0
	}
	c.digest = [16]byte{}
	c.flags &^= rowSealed | sealDigestKept
}

// issue records entry seq as serial's last issuance, and returns the one
// before it, if any.
func (t *rowTable) made(serial, seq uint64) (prev uint64, twice bool) {
	c := t.get(serial)
	if c.flags&rowMade != 0 {
		prev, twice = t.madeSeq(c), true
	}
	c.flags |= rowMade
	switch {
	case c.flags&rowSealed == 0:
		c.seq = seq
	case c.seq == seq:
		t.clearSplit(c)
	default:
		t.setSplit(c, seq)
	}
	return prev, twice
}

// unmake forgets the entry that made row serial (a revocation pruned
// through sshca).
func (t *rowTable) unmake(serial uint64) {
	c := t.find(serial)
	if c == nil || c.flags&rowMade == 0 {
		return
	}
	t.clearSplit(c)
	c.flags &^= rowMade
	if c.flags&rowSealed == 0 {
		c.seq = 0
	}
}
