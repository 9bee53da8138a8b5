package auth

import (
	"fmt"
	"os"
	"strings"
)

// TokenEnv is the environment variable holding the token the command-line
// commands send to the API (the token itself; --token-file names a file).
const TokenEnv = "FEATURESTORE_TOKEN"

// ClientToken is the bearer token a command sends: the content of file
// (surrounding whitespace trimmed) when one is given, otherwise the value
// of the FEATURESTORE_TOKEN variable (env); "" when neither is set.
func ClientToken(file, env string) (string, error) {
	tok, from := strings.TrimSpace(env), TokenEnv
	if file != "" {
		b, err := os.ReadFile(file) // #nosec G304 -- the file the user named with --token-file
		if err != nil {
			return "", fmt.Errorf("token file: %w", err)
		}
		tok, from = strings.TrimSpace(string(b)), file
		if tok == "" {
			return "", fmt.Errorf("token file %s is empty", file)
		}
	}
	if tok != "" && (len(tok) > maxTokenLen || !validB64Token(tok)) {
		return "", fmt.Errorf("the token in %s is not a bearer token (letters, digits, - . _ ~ + / and trailing =)", from)
	}
	return tok, nil
}
