package git

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Commit is a commit of the cache and the name it was resolved from.
type Commit struct {
	Hash    string    // full hex hash
	Ref     string    // the name it was resolved from ("main", "v1.2", "refs/heads/main"); "" for a hash
	Message string    // the full message
	Author  string    // "Name <email>"
	When    time.Time // the author date
	Parents []string  // full hex hashes, first parent first
}

// Revision names the commit the way Flux does: "main@sha1:abc1234def56"
// (ref name and 12 hex digits), or "sha1:abc1234def56" when the commit
// was resolved from a hash.
func (c Commit) Revision() string {
	h := c.Hash
	if len(h) > 12 {
		h = h[:12]
	}
	if c.Ref == "" {
		return "sha1:" + h
	}
	return c.Ref + "@sha1:" + h
}

// Resolve finds a commit in the cache, as left by the last Fetch; it never
// contacts the remote. ref is one of:
//
//   - "": the remote's default branch (where its HEAD points);
//   - a branch or tag name ("main", "v1.2"); like git, a tag wins over a
//     branch of the same name;
//   - a full ref name ("refs/heads/main", "refs/tags/v1.2");
//   - a full or abbreviated (at least 4 hex digits) commit hash.
//
// An annotated tag resolves to the commit it tags. The error wraps
// ErrRefNotFound when nothing matches.
func (r *Repo) Resolve(ctx context.Context, ref string) (Commit, error) {
	if err := ctx.Err(); err != nil {
		return Commit{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.store == nil {
		return Commit{}, errClosed
	}

	name := ref
	if ref == "" {
		head, err := r.remoteHead()
		if err != nil {
			return Commit{}, fmt.Errorf("resolve default branch: %w", err)
		}
		if head == "" {
			return Commit{}, &refError{remote: r.remote.display, why: "not fetched yet, or the remote HEAD names no branch"}
		}
		name = head
	}
	if !validRefName(name) {
		return Commit{}, &refError{ref: ref, remote: r.remote.display, why: "not a valid ref name"}
	}

	var found []*plumbing.Reference
	for _, cand := range candidates(name) {
		got, err := r.store.Reference(cand)
		if errors.Is(err, plumbing.ErrReferenceNotFound) {
			continue
		}
		if err != nil {
			return Commit{}, fmt.Errorf("resolve %q: %w", ref, err)
		}
		found = append(found, got)
	}
	if len(found) > 1 {
		r.log.Warn("git ref is ambiguous, using the tag", "ref", name, "refs", []string{found[0].Name().String(), found[1].Name().String()})
	}
	if len(found) > 0 {
		c, err := r.peel(found[0].Hash())
		if err != nil {
			return Commit{}, fmt.Errorf("resolve %q: %w", ref, err)
		}
		return newCommit(c, name), nil
	}

	if isHex(name) && len(name) >= 4 && len(name) <= 40 {
		c, err := r.resolveHash(strings.ToLower(name))
		if err != nil {
			return Commit{}, fmt.Errorf("resolve %q: %w", ref, err)
		}
		if c != nil {
			return newCommit(c, ""), nil
		}
	}
	return Commit{}, &refError{ref: ref, remote: r.remote.display}
}

// candidates returns the cache refs that name may mean, in git's order.
func candidates(name string) []plumbing.ReferenceName {
	switch {
	case strings.HasPrefix(name, branchPrefix):
		return []plumbing.ReferenceName{plumbing.ReferenceName(trackPrefix + strings.TrimPrefix(name, branchPrefix))}
	case strings.HasPrefix(name, "refs/"):
		return []plumbing.ReferenceName{plumbing.ReferenceName(name)}
	default:
		return []plumbing.ReferenceName{
			plumbing.ReferenceName(tagPrefix + name),
			plumbing.ReferenceName(trackPrefix + name),
		}
	}
}

// resolveHash finds the commit whose hash starts with prefix; it returns
// nil, nil when there is none.
func (r *Repo) resolveHash(prefix string) (*object.Commit, error) {
	if len(prefix) == 40 {
		c, err := r.peel(plumbing.NewHash(prefix))
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			return nil, nil
		}
		return c, err
	}
	even, err := hex.DecodeString(prefix[:len(prefix)&^1])
	if err != nil {
		return nil, nil
	}
	hashes, err := r.store.HashesWithPrefix(even)
	if err != nil {
		return nil, err
	}
	var match *object.Commit
	for _, h := range hashes {
		if !strings.HasPrefix(h.String(), prefix) {
			continue
		}
		obj, err := r.store.EncodedObject(plumbing.AnyObject, h)
		if err != nil {
			return nil, err
		}
		if obj.Type() != plumbing.CommitObject {
			continue // a tree or blob: not what a ref means
		}
		if match != nil {
			return nil, fmt.Errorf("abbreviated hash is ambiguous: %s and %s", match.Hash, h)
		}
		if match, err = object.DecodeCommit(r.store, obj); err != nil {
			return nil, err
		}
	}
	return match, nil
}

// peel follows annotated tags from h to the commit they tag.
func (r *Repo) peel(h plumbing.Hash) (*object.Commit, error) {
	for range 16 {
		obj, err := r.store.EncodedObject(plumbing.AnyObject, h)
		if err != nil {
			return nil, err
		}
		switch obj.Type() {
		case plumbing.CommitObject:
			return object.DecodeCommit(r.store, obj)
		case plumbing.TagObject:
			tag, err := object.DecodeTag(r.store, obj)
			if err != nil {
				return nil, err
			}
			h = tag.Target
		default:
			return nil, fmt.Errorf("%s is a %s, not a commit", h, obj.Type())
		}
	}
	return nil, fmt.Errorf("%s: tags nested too deep", h)
}

func newCommit(c *object.Commit, ref string) Commit {
	parents := make([]string, len(c.ParentHashes))
	for i, p := range c.ParentHashes {
		parents[i] = p.String()
	}
	return Commit{
		Hash:    c.Hash.String(),
		Ref:     ref,
		Message: c.Message,
		Author:  c.Author.String(),
		When:    c.Author.When,
		Parents: parents,
	}
}

func isHex(s string) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return s != ""
}

// validRefName applies git's check-ref-format rules that matter here: it
// keeps a name from reaching outside the refs directory of the cache.
func validRefName(name string) bool {
	if name == "" || name == "@" || strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") ||
		strings.HasSuffix(name, ".") || strings.HasSuffix(name, ".lock") ||
		strings.Contains(name, "..") || strings.Contains(name, "//") || strings.Contains(name, "@{") ||
		strings.ContainsAny(name, " ~^:?*[\\\x7f") {
		return false
	}
	for _, c := range name {
		if c < 0x20 {
			return false
		}
	}
	for part := range strings.SplitSeq(name, "/") {
		if strings.HasPrefix(part, ".") {
			return false
		}
	}
	return true
}
