package githubtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits GitHub enforces on what molt writes.
const (
	maxCommentBody = 65536 // characters of an issue comment or a pull request body
	maxDescription = 140   // characters of a commit status description
)

const docs = "https://docs.github.com/rest"

// route answers a request whose token and faults were dealt with.
func (s *Server) route(w http.ResponseWriter, r *http.Request, path string) {
	r2 := r.Clone(r.Context())
	r2.URL.Path, r2.URL.RawPath = path, ""
	s.mux.ServeHTTP(w, r2)
}

// routes returns the endpoints served.
func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	repo := "/repos/{owner}/{repo}"
	mux.HandleFunc("GET "+repo+"/issues/{number}/comments", s.listComments)
	mux.HandleFunc("POST "+repo+"/issues/{number}/comments", s.createComment)
	mux.HandleFunc("PATCH "+repo+"/issues/comments/{id}", s.editComment)
	mux.HandleFunc("POST "+repo+"/statuses/{sha}", s.createStatus)
	mux.HandleFunc("GET "+repo+"/commits/{ref}/statuses", s.listStatuses)
	mux.HandleFunc("GET "+repo+"/commits/{sha}/pulls", s.pullsWithCommit)
	mux.HandleFunc("GET "+repo+"/pulls", s.listPulls)
	mux.HandleFunc("POST "+repo+"/pulls", s.createPull)
	mux.HandleFunc("GET "+repo+"/git/ref/{ref...}", s.getRef)
	mux.HandleFunc("POST "+repo+"/git/refs", s.createRef)
	mux.HandleFunc("GET "+repo+"/git/commits/{sha}", s.getCommit)
	mux.HandleFunc("POST "+repo+"/git/commits", s.createCommit)
	mux.HandleFunc("GET "+repo+"/installation", s.getInstallation)
	mux.HandleFunc("POST /app/installations/{id}/access_tokens", s.createAccessToken)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { notFound(w) })
	return mux
}

func notFound(w http.ResponseWriter) {
	writeError(w, http.StatusNotFound, errorJSON{Message: "Not Found", DocumentationURL: docs})
}

func invalid(w http.ResponseWriter, doc string, items ...errorItem) {
	writeError(w, http.StatusUnprocessableEntity, errorJSON{Message: "Validation Failed", Errors: items, DocumentationURL: doc})
}

func unprocessable(w http.ResponseWriter, doc, msg string) {
	writeError(w, http.StatusUnprocessableEntity, errorJSON{Message: msg, DocumentationURL: doc})
}

// ours checks the owner and repository of the path (GitHub compares them
// without regard to case), answering 404 when they are not served.
func (s *Server) ours(w http.ResponseWriter, r *http.Request) bool {
	if !strings.EqualFold(r.PathValue("owner"), s.owner) || !strings.EqualFold(r.PathValue("repo"), s.repo) {
		notFound(w)
		return false
	}
	return true
}

// decode reads a JSON request body, answering 400 as GitHub does when it
// is not JSON.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	b, err := io.ReadAll(io.LimitReader(r.Body, 10<<20))
	if err == nil {
		err = json.Unmarshal(b, v)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, errorJSON{Message: "Problems parsing JSON", DocumentationURL: docs})
		return false
	}
	return true
}

// page cuts a list as GitHub paginates it (per_page default 30, at most
// 100) and sets the Link header.
func page[T any](w http.ResponseWriter, r *http.Request, api string, all []T) []T {
	q := r.URL.Query()
	per, err := strconv.Atoi(q.Get("per_page"))
	if err != nil || per <= 0 {
		per = 30
	}
	per = min(per, 100)
	n, err := strconv.Atoi(q.Get("page"))
	if err != nil || n <= 0 {
		n = 1
	}
	last := max((len(all)+per-1)/per, 1)
	link := func(p int, rel string) string {
		q2 := url.Values{}
		for k, v := range q {
			q2[k] = v
		}
		q2.Set("page", strconv.Itoa(p))
		q2.Set("per_page", strconv.Itoa(per))
		return fmt.Sprintf(`<%s%s?%s>; rel="%s"`, strings.TrimSuffix(api, "/"), r.URL.Path, q2.Encode(), rel)
	}
	var links []string
	if n > 1 {
		links = append(links, link(n-1, "prev"))
	}
	if n < last {
		links = append(links, link(n+1, "next"), link(last, "last"))
	}
	if n > 1 {
		links = append(links, link(1, "first"))
	}
	if len(links) > 0 {
		w.Header().Set("Link", strings.Join(links, ", "))
	}
	from := min((n-1)*per, len(all))
	return all[from:min(from+per, len(all))]
}

func (s *Server) prNumber(w http.ResponseWriter, r *http.Request) (int, bool) {
	n, err := strconv.Atoi(r.PathValue("number"))
	if err != nil || s.pull(n) == nil {
		notFound(w)
		return 0, false
	}
	return n, true
}

func (s *Server) listComments(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ours(w, r) {
		return
	}
	n, ok := s.prNumber(w, r)
	if !ok {
		return
	}
	all := make([]commentJSON, 0, len(s.comments[n]))
	for _, c := range s.comments[n] {
		all = append(all, s.commentJSON(n, c))
	}
	writeJSON(w, http.StatusOK, page(w, r, s.api, all))
}

type commentRequest struct {
	Body *string `json:"body"`
}

// checkBody answers 422 for a missing or too long comment body.
func checkBody(w http.ResponseWriter, doc string, body *string) bool {
	if body == nil {
		unprocessable(w, doc, "Invalid request.\n\n\"body\" wasn't supplied.")
		return false
	}
	if utf8.RuneCountInString(*body) > maxCommentBody {
		invalid(w, doc, errorItem{Resource: "IssueComment", Field: "body", Code: "custom",
			Message: fmt.Sprintf("body is too long (maximum is %d characters)", maxCommentBody)})
		return false
	}
	return true
}

func (s *Server) createComment(w http.ResponseWriter, r *http.Request) {
	var req commentRequest
	if !decode(w, r, &req) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ours(w, r) {
		return
	}
	n, ok := s.prNumber(w, r)
	if !ok {
		return
	}
	const doc = docs + "/issues/comments#create-an-issue-comment"
	if !checkBody(w, doc, req.Body) {
		return
	}
	c := s.addComment(n, s.author(r), *req.Body)
	w.Header().Set("Location", fmt.Sprintf("%s/issues/comments/%d", s.repoAPI(), c.ID))
	writeJSON(w, http.StatusCreated, s.commentJSON(n, c))
}

func (s *Server) editComment(w http.ResponseWriter, r *http.Request) {
	var req commentRequest
	if !decode(w, r, &req) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ours(w, r) {
		return
	}
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	const doc = docs + "/issues/comments#update-an-issue-comment"
	for pr, cs := range s.comments {
		for _, c := range cs {
			if c.ID != id {
				continue
			}
			if !checkBody(w, doc, req.Body) {
				return
			}
			c.Body = *req.Body
			c.Updated = s.now()
			writeJSON(w, http.StatusOK, s.commentJSON(pr, c))
			return
		}
	}
	notFound(w)
}

func (s *Server) createStatus(w http.ResponseWriter, r *http.Request) {
	var req struct {
		State       string `json:"state"`
		TargetURL   string `json:"target_url"`
		Description string `json:"description"`
		Context     string `json:"context"`
	}
	if !decode(w, r, &req) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ours(w, r) {
		return
	}
	sha := r.PathValue("sha")
	const doc = docs + "/commits/statuses#create-a-commit-status"
	if _, ok := s.commits[sha]; !ok {
		unprocessable(w, doc, "No commit found for SHA: "+sha)
		return
	}
	switch req.State {
	case "error", "failure", "pending", "success":
	default:
		invalid(w, doc, errorItem{Resource: "Status", Field: "state", Code: "invalid"})
		return
	}
	if utf8.RuneCountInString(req.Description) > maxDescription {
		invalid(w, doc, errorItem{Resource: "Status", Field: "description", Code: "custom",
			Message: fmt.Sprintf("description is too long (maximum is %d characters)", maxDescription)})
		return
	}
	if req.Context == "" {
		req.Context = "default"
	}
	s.seq++
	st := Status{ID: 3_000_000 + s.seq, State: req.State, Context: req.Context,
		Description: req.Description, TargetURL: req.TargetURL, Creator: s.author(r), Created: s.now()}
	s.statuses[sha] = append(s.statuses[sha], st)
	writeJSON(w, http.StatusCreated, s.statusJSON(sha, st))
}

func (s *Server) listStatuses(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ours(w, r) {
		return
	}
	sha := r.PathValue("ref")
	if to, ok := s.refs["heads/"+sha]; ok {
		sha = to
	}
	list := s.statuses[sha]
	all := make([]statusJSON, 0, len(list))
	for i := len(list) - 1; i >= 0; i-- { // newest first, as GitHub lists them
		all = append(all, s.statusJSON(sha, list[i]))
	}
	writeJSON(w, http.StatusOK, page(w, r, s.api, all))
}

func (s *Server) pullsWithCommit(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ours(w, r) {
		return
	}
	sha := r.PathValue("sha")
	all := []pullJSON{}
	for _, p := range s.pulls {
		if p.HeadSHA == sha || p.MergeCommit == sha || slices.Contains(p.Commits, sha) {
			all = append(all, s.pullJSON(p))
		}
	}
	writeJSON(w, http.StatusOK, page(w, r, s.api, all))
}

func (s *Server) listPulls(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ours(w, r) {
		return
	}
	q := r.URL.Query()
	state := q.Get("state")
	if state == "" {
		state = "open"
	}
	head := q.Get("head")
	if owner, branch, ok := strings.Cut(head, ":"); ok {
		if !strings.EqualFold(owner, s.owner) {
			writeJSON(w, http.StatusOK, []pullJSON{})
			return
		}
		head = branch
	}
	all := []pullJSON{}
	for i := len(s.pulls) - 1; i >= 0; i-- { // newest first
		p := s.pulls[i]
		if (state != "all" && p.State != state) || (head != "" && p.Head != head) || (q.Has("base") && p.Base != q.Get("base")) {
			continue
		}
		all = append(all, s.pullJSON(p))
	}
	writeJSON(w, http.StatusOK, page(w, r, s.api, all))
}

func (s *Server) createPull(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Title string `json:"title"`
		Head  string `json:"head"`
		Base  string `json:"base"`
		Body  string `json:"body"`
	}
	if !decode(w, r, &req) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ours(w, r) {
		return
	}
	const doc = docs + "/pulls/pulls#create-a-pull-request"
	head := req.Head
	if owner, branch, ok := strings.Cut(head, ":"); ok && strings.EqualFold(owner, s.owner) {
		head = branch
	}
	headSHA, okHead := s.refs["heads/"+head]
	_, okBase := s.refs["heads/"+req.Base]
	switch {
	case req.Title == "":
		invalid(w, doc, errorItem{Resource: "PullRequest", Field: "title", Code: "missing_field"})
		return
	case !okHead:
		invalid(w, doc, errorItem{Resource: "PullRequest", Field: "head", Code: "invalid"})
		return
	case !okBase:
		invalid(w, doc, errorItem{Resource: "PullRequest", Field: "base", Code: "invalid"})
		return
	case utf8.RuneCountInString(req.Body) > maxCommentBody:
		invalid(w, doc, errorItem{Resource: "PullRequest", Field: "body", Code: "custom",
			Message: fmt.Sprintf("body is too long (maximum is %d characters)", maxCommentBody)})
		return
	}
	for _, p := range s.pulls {
		if p.State == "open" && p.Head == head && p.Base == req.Base {
			invalid(w, doc, errorItem{Resource: "PullRequest", Code: "custom",
				Message: fmt.Sprintf("A pull request already exists for %s:%s.", s.owner, head)})
			return
		}
	}
	p := &Pull{Title: req.Title, Body: req.Body, Head: head, Base: req.Base, HeadSHA: headSHA,
		State: "open", Commits: []string{headSHA}, User: s.author(r)}
	s.addPull(p)
	w.Header().Set("Location", fmt.Sprintf("%s/pulls/%d", s.repoAPI(), p.Number))
	writeJSON(w, http.StatusCreated, s.pullJSON(p))
}

func (s *Server) getRef(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ours(w, r) {
		return
	}
	ref := strings.TrimPrefix(r.PathValue("ref"), "refs/")
	sha, ok := s.refs[ref]
	if !ok {
		notFound(w)
		return
	}
	writeJSON(w, http.StatusOK, s.refJSON(ref, sha))
}

func (s *Server) createRef(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Ref string `json:"ref"`
		SHA string `json:"sha"`
	}
	if !decode(w, r, &req) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ours(w, r) {
		return
	}
	const doc = docs + "/git/refs#create-a-reference"
	if !strings.HasPrefix(req.Ref, "refs/") || strings.Count(req.Ref, "/") < 2 {
		unprocessable(w, doc, `ref must start with "refs" and have at least two slashes.`)
		return
	}
	if _, ok := s.commits[req.SHA]; !ok {
		unprocessable(w, doc, "Object does not exist")
		return
	}
	ref := strings.TrimPrefix(req.Ref, "refs/")
	if _, ok := s.refs[ref]; ok {
		unprocessable(w, doc, "Reference already exists")
		return
	}
	s.refs[ref] = req.SHA
	w.Header().Set("Location", s.repoAPI()+"/git/refs/"+ref)
	writeJSON(w, http.StatusCreated, s.refJSON(ref, req.SHA))
}

func (s *Server) getCommit(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ours(w, r) {
		return
	}
	c, ok := s.commits[r.PathValue("sha")]
	if !ok {
		notFound(w)
		return
	}
	writeJSON(w, http.StatusOK, s.gitCommitJSON(c))
}

func (s *Server) createCommit(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Message string   `json:"message"`
		Tree    string   `json:"tree"`
		Parents []string `json:"parents"`
	}
	if !decode(w, r, &req) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ours(w, r) {
		return
	}
	const doc = docs + "/git/commits#create-a-commit"
	if req.Message == "" || req.Tree == "" {
		invalid(w, doc, errorItem{Resource: "Commit", Field: "message", Code: "missing_field"})
		return
	}
	if !s.trees[req.Tree] {
		unprocessable(w, doc, "Tree SHA does not exist")
		return
	}
	for _, p := range req.Parents {
		if _, ok := s.commits[p]; !ok {
			unprocessable(w, doc, "Parent SHA does not exist or is not a commit object")
			return
		}
	}
	sha := s.addCommit(req.Message, req.Tree, req.Parents)
	w.Header().Set("Location", s.repoAPI()+"/git/commits/"+sha)
	writeJSON(w, http.StatusCreated, s.gitCommitJSON(s.commits[sha]))
}
