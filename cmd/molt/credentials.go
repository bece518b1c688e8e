package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
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

// gitAuth builds the credentials for the repository: a token for HTTPS
// (--git-token-file or MOLT_GIT_TOKEN), or a key for SSH with known_hosts
// checking. It returns nil when the repository needs none.
func gitAuth(url, tokenFile, keyFile, knownHosts string) (transport.AuthMethod, error) {
	token, err := secret(tokenFile, "MOLT_GIT_TOKEN")
	if err != nil {
		return nil, err
	}
	isSSH := strings.HasPrefix(url, "ssh://") || (!strings.Contains(url, "://") && strings.Contains(url, "@") && strings.Contains(url, ":"))
	switch {
	case isSSH && keyFile != "":
		user := "git"
		if i := strings.Index(strings.TrimPrefix(url, "ssh://"), "@"); i > 0 {
			user = strings.TrimPrefix(url, "ssh://")[:i]
		}
		keys, err := gitssh.NewPublicKeysFromFile(user, keyFile, "")
		if err != nil {
			return nil, fmt.Errorf("ssh key %s: %w", keyFile, err)
		}
		if knownHosts == "" {
			return nil, errors.New("--ssh-known-hosts is required with --ssh-key-file: molt never skips host key checking")
		}
		cb, err := gitssh.NewKnownHostsCallback(knownHosts)
		if err != nil {
			return nil, fmt.Errorf("known hosts %s: %w", knownHosts, err)
		}
		keys.HostKeyCallback = cb
		return keys, nil
	case isSSH:
		return nil, nil
	case token != nil:
		if strings.HasPrefix(url, "http://") && !isLoopbackURL(url) {
			return nil, errors.New("refusing to send a Git token over plain http:// to a non-loopback host")
		}
		return &githttp.BasicAuth{Username: "x-access-token", Password: string(token)}, nil
	}
	return nil, nil
}

func isLoopbackURL(url string) bool {
	rest := strings.TrimPrefix(url, "http://")
	if i := strings.LastIndex(rest[:strings.IndexAny(rest+"/", "/")], "@"); i >= 0 {
		rest = rest[i+1:]
	}
	return strings.HasPrefix(rest, "127.") || strings.HasPrefix(rest, "localhost") || strings.HasPrefix(rest, "[::1]")
}
