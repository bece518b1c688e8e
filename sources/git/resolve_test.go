package git_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/molt-dev/molt/sources/git"
)

func TestResolve(t *testing.T) {
	f := newFixture(t)
	// A tag with a branch's name: like git, the tag wins.
	f.src.Git("tag", "feature", f.first)
	r := open(t, f.src.Dir)
	fetch(t, r)

	tests := []struct {
		ref     string
		hash    string
		wantRef string
	}{
		{"", f.second, "main"},
		{"main", f.second, "main"},
		{"refs/heads/feature", f.feature, "refs/heads/feature"},
		{"refs/remotes/origin/feature", f.feature, "refs/remotes/origin/feature"},
		{"feature", f.first, "feature"}, // the tag, not the branch
		{"v1", f.first, "v1"},
		{"v1.1", f.first, "v1.1"}, // annotated: peeled to the commit
		{"refs/tags/v1.1", f.first, "refs/tags/v1.1"},
		{f.second, f.second, ""},
		{f.second[:12], f.second, ""},
		{f.second[:7], f.second, ""},
		{f.second[:5], f.second, ""}, // odd length
		{strings.ToUpper(f.second[:8]), f.second, ""},
		{f.v11, f.first, ""}, // the hash of an annotated tag
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			c := resolve(t, r, tt.ref)
			if c.Hash != tt.hash || c.Ref != tt.wantRef {
				t.Errorf("Resolve(%q) = %s %q, want %s %q", tt.ref, c.Hash, c.Ref, tt.hash, tt.wantRef)
			}
		})
	}
}

func TestResolveCommitFields(t *testing.T) {
	f := newFixture(t)
	r := open(t, f.src.Dir)
	fetch(t, r)

	c := resolve(t, r, "v1")
	want := git.Commit{
		Hash:    f.first,
		Ref:     "v1",
		Message: "first\n\nwith a body\n",
		Author:  "Molt Test <test@molt.invalid>",
		When:    time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	if c.Hash != want.Hash || c.Ref != want.Ref || c.Message != want.Message ||
		c.Author != want.Author || !c.When.Equal(want.When) || len(c.Parents) != 0 {
		t.Errorf("Resolve(v1) = %+v\nwant %+v", c, want)
	}
	if c := resolve(t, r, "main"); len(c.Parents) != 1 || c.Parents[0] != f.first {
		t.Errorf("main parents = %v, want [%s]", c.Parents, f.first)
	}
}

func TestResolveErrors(t *testing.T) {
	f := newFixture(t)
	r := open(t, f.src.Dir)
	fetch(t, r)
	tree := f.src.Git("rev-parse", "main^{tree}")

	tests := []struct {
		ref      string
		notFound bool   // errors.Is(err, ErrRefNotFound)
		msg      string // the message contains it
	}{
		{"nope", true, `ref "nope" not found in file://` + f.src.Dir},
		{"refs/heads/nope", true, `ref "refs/heads/nope" not found`},
		{"0000000000000000000000000000000000000000", true, "not found"},
		{"abc", true, "not found"},      // too short for a hash
		{"deadbeef", true, "not found"}, // hex, but no such object
		{"../config", true, "not a valid ref name"},
		{"refs/../../config", true, "not a valid ref name"},
		{"main~1", true, "not a valid ref name"},
		{tree, false, "is a tree, not a commit"},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			_, err := r.Resolve(context.Background(), tt.ref)
			if err == nil {
				t.Fatal("Resolve succeeded")
			}
			if got := errors.Is(err, git.ErrRefNotFound); got != tt.notFound {
				t.Errorf("errors.Is(%v, ErrRefNotFound) = %v, want %v", err, got, tt.notFound)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not contain %q", err, tt.msg)
			}
		})
	}
}

func TestResolveBeforeFetch(t *testing.T) {
	f := newFixture(t)
	r := open(t, f.src.Dir)
	_, err := r.Resolve(context.Background(), "")
	if !errors.Is(err, git.ErrRefNotFound) || !strings.Contains(err.Error(), "default branch not known") {
		t.Errorf("Resolve before Fetch: %v", err)
	}
}

func TestRevision(t *testing.T) {
	const h = "0123456789abcdef0123456789abcdef01234567"
	tests := []struct {
		c    git.Commit
		want string
	}{
		{git.Commit{Hash: h, Ref: "main"}, "main@sha1:0123456789ab"},
		{git.Commit{Hash: h, Ref: "refs/tags/v1"}, "refs/tags/v1@sha1:0123456789ab"},
		{git.Commit{Hash: h}, "sha1:0123456789ab"},
		{git.Commit{Hash: "abc", Ref: "x"}, "x@sha1:abc"},
	}
	for _, tt := range tests {
		if got := tt.c.Revision(); got != tt.want {
			t.Errorf("%+v.Revision() = %q, want %q", tt.c, got, tt.want)
		}
	}
}
