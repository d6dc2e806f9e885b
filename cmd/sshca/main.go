// Command sshca is an SSH certificate authority for OpenSSH fleets.
package main

import (
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/sshca/sshca/internal/cli"
)

func main() {
	os.Exit(run())
}

// run runs the command; with SSHCA_CPUPROFILE=FILE set it writes a Go CPU
// profile of the whole command there (diagnostics of the batch commands,
// see BENCHMARKS.md; `serve --cpuprofile` profiles the service).
func run() int {
	if path := os.Getenv("SSHCA_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "sshca: error: SSHCA_CPUPROFILE: %v\n", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(os.Stderr, "sshca: error: SSHCA_CPUPROFILE: %v\n", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	return cli.Main(os.Args[1:])
}
