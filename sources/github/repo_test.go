package github

import "testing"

func TestParseRepoURL(t *testing.T) {
	tests := []struct {
		url         string
		owner, name string
		ok          bool
	}{
		{"https://github.com/octo-org/fleet", "octo-org", "fleet", true},
		{"https://github.com/octo-org/fleet.git", "octo-org", "fleet", true},
		{"https://github.com/octo-org/fleet/", "octo-org", "fleet", true},
		{"http://ghe.example.com/octo-org/fleet.git", "octo-org", "fleet", true},
		{"https://user:tok@github.com/octo-org/fleet.git", "octo-org", "fleet", true},
		{"git@github.com:octo-org/fleet.git", "octo-org", "fleet", true},
		{"git@github.com:octo-org/fleet", "octo-org", "fleet", true},
		{"github.com:octo-org/my.fleet.git", "octo-org", "my.fleet", true},
		{"ssh://git@github.com/octo-org/fleet.git", "octo-org", "fleet", true},
		{"ssh://git@ghe.example.com:2222/octo-org/fleet.git", "octo-org", "fleet", true},
		{"  https://github.com/o/n.git\n", "o", "n", true},
		{"https://github.com/octo-org", "", "", false},
		{"https://github.com/a/b/c", "", "", false},
		{"file:///srv/git/fleet.git", "", "", false},
		{"/srv/git/fleet.git", "", "", false},
		{"./fleet", "", "", false},
		{"C:\\repos\\fleet", "", "", false},
		{"git@github.com:/abs/path.git", "", "", false},
		{"@github.com:o/n", "", "", false},
		{"https://github.com/../n", "", "", false},
		{"", "", "", false},
	}
	for _, tt := range tests {
		owner, name, ok := ParseRepoURL(tt.url)
		if owner != tt.owner || name != tt.name || ok != tt.ok {
			t.Errorf("ParseRepoURL(%q) = %q, %q, %v; want %q, %q, %v", tt.url, owner, name, ok, tt.owner, tt.name, tt.ok)
		}
	}
}

func TestWebURL(t *testing.T) {
	tests := []struct{ api, web string }{
		{"", "https://github.com/"},
		{"https://api.github.com/", "https://github.com/"},
		{"https://api.github.com", "https://github.com/"},
		{"https://ghe.example.com/api/v3/", "https://ghe.example.com/"},
		{"https://ghe.example.com/api/v3", "https://ghe.example.com/"},
		{"https://api.octocorp.ghe.com/", "https://octocorp.ghe.com/"},
		{"http://127.0.0.1:8080/", "http://127.0.0.1:8080/"},
		{"https://proxy.example.com/github/api/v3/", "https://proxy.example.com/github/"},
	}
	for _, tt := range tests {
		got, err := webURL(tt.api)
		if err != nil || got != tt.web {
			t.Errorf("webURL(%q) = %q, %v; want %q", tt.api, got, err, tt.web)
		}
	}
	ref, err := NewRepoRef("https://ghe.example.com/api/v3/", "o", "r")
	if err != nil || ref.BlobURL("abc", "/a/b.cue", 3) != "https://ghe.example.com/o/r/blob/abc/a/b.cue#L3" {
		t.Errorf("NewRepoRef: %+v, %v", ref, err)
	}
}
