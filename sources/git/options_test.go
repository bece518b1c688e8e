package git

import (
	"errors"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		url  string
		ok   bool
		want string // part of the error message
	}{
		{"https://github.com/org/fleet.git", true, ""},
		{"http://127.0.0.1:8080/fleet.git", true, ""},
		{"ssh://git@github.com/org/fleet.git", true, ""},
		{"git@github.com:org/fleet.git", true, ""},
		{"file:///srv/git/fleet.git", true, ""},
		{"/srv/git/fleet.git", true, ""},
		{"fleet", true, ""},
		{"./dir:with/colon", true, ""},
		{"", false, "url is required"},
		{"ftp://example.com/x.git", false, `scheme "ftp" not supported`},
		{"git://127.0.0.1:9418/fleet.git", true, ""}, // git daemon
		{"file://host/x.git", false, "no host"},
		{"https:///x.git", false, "no host"},
		{" https://example.com/x.git", false, "space"},
		{"https://user:p%zz@example.com/x.git", false, "not a valid URL"},
		{"ftp://user:s3cret@example.com/x.git", false, "ftp://example.com/x.git"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			err := Options{URL: tt.url, CacheDir: "/tmp/cache"}.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %q, want it to contain %q", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "s3cret") {
				t.Errorf("Validate() = %q: leaks the password", err)
			}
		})
	}
	if err := (Options{URL: "https://example.com/x.git"}).Validate(); err == nil {
		t.Error("Validate() without a cache dir succeeded")
	}
}

func TestParseRemote(t *testing.T) {
	tests := []struct {
		raw, url, display string
	}{
		{"/srv/fleet.git", "file:///srv/fleet.git", "file:///srv/fleet.git"},
		{"/srv/a b.git", "file:///srv/a%20b.git", "file:///srv/a%20b.git"},
		{"https://tok:s3cret@host/x.git", "https://tok:s3cret@host/x.git", "https://host/x.git"},
		{"https://s3cret@host/x.git", "https://s3cret@host/x.git", "https://host/x.git"},
		{"ssh://git@host/x.git", "ssh://git@host/x.git", "ssh://host/x.git"},
		{"git@host:x.git", "git@host:x.git", "git@host:x.git"},
	}
	for _, tt := range tests {
		r, err := parseRemote(tt.raw)
		if err != nil {
			t.Errorf("parseRemote(%q): %v", tt.raw, err)
			continue
		}
		if r.url != tt.url || r.display != tt.display {
			t.Errorf("parseRemote(%q) = %q, %q; want %q, %q", tt.raw, r.url, r.display, tt.url, tt.display)
		}
	}
}

func TestScrub(t *testing.T) {
	r, err := parseRemote("https://molt:s3cret%2Fx@example.com/x.git")
	if err != nil {
		t.Fatal(err)
	}
	msgs := []string{
		`Get "https://molt:***@example.com/x.git/info/refs": refused`,
		`auth failed for https://molt:s3cret%2Fx@example.com/x.git`,
		`password s3cret/x rejected`,
		`basic auth molt:s3cret/x`,
	}
	for _, msg := range msgs {
		err := r.wrap("fetch", errors.New(msg))
		got := err.Error()
		if strings.Contains(got, "s3cret") || strings.Contains(got, "molt:") {
			t.Errorf("wrap(%q) = %q: credentials left", msg, got)
		}
		if !strings.HasPrefix(got, "fetch https://example.com/x.git: ") {
			t.Errorf("wrap(%q) = %q: want the URL without credentials first", msg, got)
		}
	}
}
