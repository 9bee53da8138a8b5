package app

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/featurestore/featurestore/internal/auth"
)

const tokenUsage = `featurestore token: make an API token and its token file entry.

Usage:
  featurestore token --name NAME --role reader|writer|admin

Prints the token (256 random bits, shown once: give it to the client, e.g. in
FEATURESTORE_TOKEN or a file for --token-file) and the line to add under
tokens: in the --auth-tokens-file, which holds only the token's SHA-256
digest. The service picks the change up within --reload-interval, or at once
on SIGHUP. To revoke a token, delete its line.

Flags:
`

// tokenCmd is `featurestore token`.
func tokenCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("featurestore token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "the token's name, shown in logs and metrics (lower case letters, digits, _ . -)")
	role := fs.String("role", "", "reader, writer or admin")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), tokenUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 || *name == "" || *role == "" {
		return errors.New("token needs --name and --role and takes no arguments (see featurestore token --help)")
	}
	r, err := auth.ParseRole(*role)
	if err != nil {
		return err
	}
	token, entry, err := auth.NewToken(*name, r)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "token: %s\n\nadd under tokens: in the --auth-tokens-file:\n%s\n", token, entry)
	return err
}
