//go:build !unix

package witness

import "os"

// lockFile does nothing where flock(2) does not exist: processes sharing a
// home may then move the head back, which weakens but never breaks it.
func lockFile(*os.File) error { return nil }
