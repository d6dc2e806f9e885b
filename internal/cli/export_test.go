package cli

// SetAuditPage makes audit verify read n entries at a time until the
// returned function restores the default. Not for parallel tests.
func SetAuditPage(n int) (restore func()) {
	old := auditPage
	auditPage = n
	return func() { auditPage = old }
}
