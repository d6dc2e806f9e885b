package sshdtest

import "syscall"

// sysProcAttr puts a child in its own process group, so a terminal's ^C
// reaches only the test binary, and makes the kernel send it SIGTERM if the
// test binary dies without running its cleanups.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
