package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/sshca/sshca/internal/buildinfo"
)

func newVersionCommand() *command {
	var asJSON bool
	return &command{
		name:    "version",
		summary: "print sshca's version, VCS revision and Go version (also: sshca --version)",
		usage:   "[--json]",
		example: `  sshca version
  sshca version --json | jq -r .revision`,
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&asJSON, "json", false, "print one JSON object")
		},
		maxArgs: 0,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if asJSON {
				bi := buildinfo.Get()
				return json.NewEncoder(e.stdout).Encode(struct {
					Version   string `json:"version"`
					Revision  string `json:"revision"`
					Modified  bool   `json:"modified"`
					Time      string `json:"time,omitempty"`
					GoVersion string `json:"go_version"`
				}{bi.Version, bi.Revision, bi.Modified, bi.Time, bi.GoVersion})
			}
			printVersion(e.stdout)
			return nil
		},
	}
}

// printVersion writes what `sshca version` and `sshca --version` print.
func printVersion(w io.Writer) {
	bi := buildinfo.Get()
	rev := bi.Revision
	if bi.Modified {
		rev += " (modified)"
	}
	if bi.Time != "" {
		rev += " " + bi.Time
	}
	fmt.Fprintf(w, "sshca %s\nrevision: %s\ngo: %s\n", bi.Version, rev, bi.GoVersion)
}
