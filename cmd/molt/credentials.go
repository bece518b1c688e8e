package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/spf13/pflag"
)

// secret reads a secret from a file (when path is set) or from the
// environment variable; secrets never come from flags, so they stay out of
// process listings and shell history. It returns nil when neither is set.
func secret(path, envVar string) ([]byte, error) {
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read secret file: %w", err)
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			return nil, fmt.Errorf("secret file %s is empty", path)
		}
		return []byte(s), nil
	}
	if v := strings.TrimSpace(os.Getenv(envVar)); v != "" {
		return []byte(v), nil
	}
	return nil, nil
}

// gitCreds are the credentials of the repository, the same flags on every
// command that reads one (validate --repo, plan, apply, serve).
type gitCreds struct {
	tokenFile  string
	keyFile    string
	knownHosts string
}

func (c *gitCreds) register(fs *pflag.FlagSet) {
	fs.StringVar(&c.tokenFile, "git-token-file", "", "file holding an HTTPS token for the repository (or MOLT_GIT_TOKEN)")
	fs.StringVar(&c.keyFile, "ssh-key-file", "", "private key for an ssh:// or user@host:path repository")
	fs.StringVar(&c.knownHosts, "ssh-known-hosts", "", "known_hosts file to check the ssh server's key against (required with --ssh-key-file)")
}

// auth builds the credentials for the repository at url: a token for
// HTTPS (--git-token-file or MOLT_GIT_TOKEN), or a key for SSH with
// known_hosts checking. It returns nil when the repository needs none, and
// says which credential it is, for error messages.
func (c gitCreds) auth(url string) (transport.AuthMethod, string, error) {
	token, err := secret(c.tokenFile, "MOLT_GIT_TOKEN")
	if err != nil {
		return nil, "", err
	}
	tokenFrom := "the token from MOLT_GIT_TOKEN"
	if c.tokenFile != "" {
		tokenFrom = "the token in " + c.tokenFile
	}
	isSSH := strings.HasPrefix(url, "ssh://") || (!strings.Contains(url, "://") && strings.Contains(url, "@") && strings.Contains(url, ":"))
	switch {
	case isSSH && c.keyFile != "":
		user := "git"
		if i := strings.Index(strings.TrimPrefix(url, "ssh://"), "@"); i > 0 {
			user = strings.TrimPrefix(url, "ssh://")[:i]
		}
		keys, err := gitssh.NewPublicKeysFromFile(user, c.keyFile, "")
		if err != nil {
			return nil, "", fmt.Errorf("ssh key %s: %w", c.keyFile, err)
		}
		if c.knownHosts == "" {
			return nil, "", &usageError{errors.New("--ssh-known-hosts is required with --ssh-key-file: molt never skips host key checking")}
		}
		cb, err := gitssh.NewKnownHostsCallback(c.knownHosts)
		if err != nil {
			return nil, "", fmt.Errorf("known hosts %s: %w", c.knownHosts, err)
		}
		keys.HostKeyCallback = cb
		return keys, fmt.Sprintf("the ssh key %s (user %s)", c.keyFile, user), nil
	case isSSH:
		return nil, "the ssh agent's keys (SSH_AUTH_SOCK; or give --ssh-key-file)", nil
	case c.keyFile != "":
		return nil, "", &usageError{fmt.Errorf("--ssh-key-file is for an ssh repository, not %s", url)}
	case token != nil:
		if strings.HasPrefix(url, "http://") && !isLoopbackURL(url) {
			return nil, "", errors.New("refusing to send a Git token over plain http:// to a non-loopback host")
		}
		return &githttp.BasicAuth{Username: "x-access-token", Password: string(token)}, tokenFrom, nil
	case strings.HasPrefix(url, "http://") || strings.HasPrefix(url, "https://"):
		return nil, "no credential (give a token with --git-token-file or MOLT_GIT_TOKEN)", nil
	}
	return nil, "", nil
}

func isLoopbackURL(url string) bool {
	rest := strings.TrimPrefix(url, "http://")
	if i := strings.LastIndex(rest[:strings.IndexAny(rest+"/", "/")], "@"); i >= 0 {
		rest = rest[i+1:]
	}
	return strings.HasPrefix(rest, "127.") || strings.HasPrefix(rest, "localhost") || strings.HasPrefix(rest, "[::1]")
}
