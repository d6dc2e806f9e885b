package ca

import "testing"

// SetPipeChunk sets how many requests CommitSigning signs per chunk for
// the rest of the test.
func SetPipeChunk(t testing.TB, n int) {
	old := pipeChunk
	pipeChunk = n
	t.Cleanup(func() { pipeChunk = old })
}
