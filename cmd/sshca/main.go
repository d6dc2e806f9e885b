// Command sshca is an SSH certificate authority for OpenSSH fleets.
package main

import (
	"os"

	"github.com/sshca/sshca/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}
