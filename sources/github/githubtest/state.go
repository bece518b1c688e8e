package githubtest

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Comment is an issue comment (a comment on the conversation of a pull
// request) as the server keeps it.
type Comment struct {
	ID      int64
	User    string
	Body    string
	Created time.Time
	Updated time.Time
}

// Status is a commit status as the server keeps it.
type Status struct {
	ID          int64
	State       string
	Context     string
	Description string
	// TargetURL is the status's link ("Details" on GitHub), as given.
	TargetURL string
	Creator   string // the login of the credentials that set it
	Created   time.Time
}

// Pull is a pull request as the server keeps it.
type Pull struct {
	ID          int64
	Number      int
	Title       string
	Body        string
	Head        string // branch name, e.g. "molt/revert-0123456789ab"
	Base        string // branch name, e.g. "main"
	HeadSHA     string
	State       string // "open" or "closed"
	Merged      bool
	MergeCommit string
	// Commits are the commits the pull request brings; pulls-with-commit
	// finds the pull request by any of them, its head or its merge commit.
	Commits []string
	User    string
	Created time.Time
}

// Commit is a Git commit as the server keeps it: its tree is only a SHA.
type Commit struct {
	SHA     string
	Message string
	Tree    string
	Parents []string
	Created time.Time
}

// Request is one request the server answered.
type Request struct {
	Time   time.Time // when it arrived, by the server's clock
	Method string
	Path   string // without the /api/v3 prefix and the query
	Query  string
	Status int
	// Credential is the kind of credential the request was accepted
	// with: CredentialToken, CredentialInstallation or CredentialJWT;
	// "" when it was refused as unauthenticated (401).
	Credential string
}

// Write reports whether the request is one GitHub counts as a write
// (POST, PATCH, PUT or DELETE).
func (r Request) Write() bool {
	switch r.Method {
	case http.MethodPost, http.MethodPatch, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// PullSeed describes a pull request for AddPull.
type PullSeed struct {
	Title, Body string
	Head, Base  string // branch names
	HeadSHA     string
	Commits     []string
	State       string // "" means "open"
	Merged      bool
	MergeCommit string
	User        string // "" means "octocat"
}

// TreeSHA returns a stable made-up tree SHA for a name, for seeding
// commits.
func TreeSHA(name string) string {
	sum := sha1.Sum([]byte("tree " + name))
	return hex.EncodeToString(sum[:])
}

// AddCommit stores a commit and returns its SHA. The parents must have
// been added before; the tree is any SHA (see TreeSHA).
func (s *Server) AddCommit(message, tree string, parents ...string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addCommit(message, tree, parents)
}

func (s *Server) addCommit(message, tree string, parents []string) string {
	s.seq++
	sum := sha1.Sum(fmt.Appendf(nil, "commit %d\ntree %s\nparents %s\n\n%s", s.seq, tree, strings.Join(parents, " "), message))
	sha := hex.EncodeToString(sum[:])
	s.commits[sha] = &Commit{SHA: sha, Message: message, Tree: tree, Parents: slices.Clone(parents), Created: s.now()}
	s.trees[tree] = true
	return sha
}

// SetRef points a reference ("heads/main" or "refs/heads/main") at a
// commit, creating it if needed.
func (s *Server) SetRef(ref, sha string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refs[strings.TrimPrefix(ref, "refs/")] = sha
}

// AddPull stores a pull request and returns its number.
func (s *Server) AddPull(p PullSeed) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	pr := &Pull{Title: p.Title, Body: p.Body, Head: p.Head, Base: p.Base, HeadSHA: p.HeadSHA,
		State: p.State, Merged: p.Merged, MergeCommit: p.MergeCommit, Commits: slices.Clone(p.Commits), User: p.User}
	if pr.State == "" {
		pr.State = "open"
	}
	if pr.User == "" {
		pr.User = "octocat"
	}
	return s.addPull(pr)
}

func (s *Server) addPull(pr *Pull) int {
	s.number++
	s.seq++
	pr.Number = s.number
	pr.ID = 1_000_000 + s.seq
	pr.Created = s.now()
	s.pulls = append(s.pulls, pr)
	return pr.Number
}

// AddComment stores an issue comment on a pull request, as written by
// user, and returns its id.
func (s *Server) AddComment(pr int, user, body string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addComment(pr, user, body).ID
}

func (s *Server) addComment(pr int, user, body string) *Comment {
	s.seq++
	now := s.now()
	c := &Comment{ID: 2_000_000 + s.seq, User: user, Body: body, Created: now, Updated: now}
	s.comments[pr] = append(s.comments[pr], c)
	return c
}

// Comments returns the comments of a pull request, oldest first.
func (s *Server) Comments(pr int) []Comment {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Comment, len(s.comments[pr]))
	for i, c := range s.comments[pr] {
		out[i] = *c
	}
	return out
}

// Statuses returns the statuses set on a commit, in the order they were
// created (GitHub lists them newest first; this does not).
func (s *Server) Statuses(sha string) []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.statuses[sha])
}

// Pulls returns every pull request, by number.
func (s *Server) Pulls() []Pull {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Pull, len(s.pulls))
	for i, p := range s.pulls {
		out[i] = *p
		out[i].Commits = slices.Clone(p.Commits)
	}
	return out
}

// Ref returns the commit a reference ("heads/main") points at.
func (s *Server) Ref(ref string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sha, ok := s.refs[strings.TrimPrefix(ref, "refs/")]
	return sha, ok
}

// Commit returns a stored commit.
func (s *Server) Commit(sha string) (Commit, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.commits[sha]
	if !ok {
		return Commit{}, false
	}
	out := *c
	out.Parents = slices.Clone(c.Parents)
	return out, true
}

// Requests returns every request answered so far, in order of arrival.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// Writes returns the POST, PATCH, PUT and DELETE requests answered so
// far, in order of arrival.
func (s *Server) Writes() []Request {
	var out []Request
	for _, r := range s.Requests() {
		if r.Write() {
			out = append(out, r)
		}
	}
	return out
}

func (s *Server) pull(number int) *Pull {
	for _, p := range s.pulls {
		if p.Number == number {
			return p
		}
	}
	return nil
}

// PutCommit stores a commit under a SHA the test chose (one that exists in
// a real Git repository the test also serves), so that the Git Data API
// answers for the same commits molt deploys.
func (s *Server) PutCommit(sha, message, tree string, parents ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commits[sha] = &Commit{SHA: sha, Message: message, Tree: tree, Parents: slices.Clone(parents), Created: s.now()}
	s.trees[tree] = true
}

// PushToPull moves a pull request's head to a new commit, as a push to its
// branch does on GitHub (the commit joins the pull request's commits).
func (s *Server) PushToPull(number int, sha string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if pr := s.pull(number); pr != nil {
		pr.HeadSHA = sha
		pr.Commits = append(pr.Commits, sha)
	}
}
