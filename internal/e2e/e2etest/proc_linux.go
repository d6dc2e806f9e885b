package e2etest

import "syscall"

// sysProcAttr makes the kernel kill a child `sshca serve` should the test
// binary die without running its cleanups.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
