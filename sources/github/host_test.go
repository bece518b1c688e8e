package github

import (
	"strings"
	"testing"
)

// TestAPIURLFor: only GitHub.com's clone URLs give an API root; any other
// host, and a local path, must be told theirs.
func TestAPIURLFor(t *testing.T) {
	tests := []struct {
		repo string
		host string // "" when none
		api  string // "" when not derived
	}{
		{"https://github.com/octo-org/fleet.git", "github.com", DefaultAPIURL},
		{"https://GitHub.com/octo-org/fleet", "github.com", DefaultAPIURL},
		{"https://x-access-token:tok@github.com/o/r.git", "github.com", DefaultAPIURL},
		{"git@github.com:octo-org/fleet.git", "github.com", DefaultAPIURL},
		{"ssh://git@github.com/octo-org/fleet.git", "github.com", DefaultAPIURL},
		{"ssh://git@ssh.github.com:443/octo-org/fleet.git", "ssh.github.com", DefaultAPIURL},
		{"https://ghe.example/o/r.git", "ghe.example", ""},
		{"git@ghe.example:o/r.git", "ghe.example", ""},
		{"https://github.com.evil.example/o/r.git", "github.com.evil.example", ""},
		{"https://evil.example/github.com/o/r.git", "evil.example", ""},
		{"http://127.0.0.1:9418/fleet.git", "127.0.0.1", ""},
		{"/srv/git/fleet.git", "", ""},
		{"file:///srv/git/fleet.git", "", ""},
		{"C:\\repos\\fleet", "", ""},
		{"./fleet", "", ""},
	}
	for _, tt := range tests {
		host, ok := RepoHost(tt.repo)
		if host != tt.host || ok != (tt.host != "") {
			t.Errorf("RepoHost(%q) = %q, %v; want %q", tt.repo, host, ok, tt.host)
		}
		api, ok := APIURLFor(tt.repo)
		if api != tt.api || ok != (tt.api != "") {
			t.Errorf("APIURLFor(%q) = %q, %v; want %q", tt.repo, api, ok, tt.api)
		}
	}
}

func TestValidateAPIURL(t *testing.T) {
	tests := []struct {
		url  string
		want string // "" for valid
	}{
		{"", ""},
		{"https://api.github.com/", ""},
		{"https://ghe.example/api/v3", ""},
		{"http://127.0.0.1:8080/", ""},
		{"http://[::1]:8080/", ""},
		{"http://localhost:8080/api/v3/", ""},
		{"http://ghe.example/api/v3/", "clear text"},
		{"http://10.0.0.1/", "clear text"},
		{"http://localhost.evil.example/", "clear text"},
		{"ftp://ghe.example/", "want http(s)"},
		{"https://user:pw@ghe.example/", "want http(s)"},
		{"ghe.example/api/v3", "want http(s)"},
	}
	for _, tt := range tests {
		err := ValidateAPIURL(tt.url)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("ValidateAPIURL(%q) = %v, want %q", tt.url, err, tt.want)
		}
	}
}
