package githubtest

import (
	"cmp"
	"encoding/base64"
	"fmt"
	"strings"
	"time"
)

// The JSON shapes of GitHub's REST answers, after the examples of
// docs.github.com/rest (fields molt never reads are kept where they are
// cheap, so that a client that expects them finds them).

type userJSON struct {
	Login             string `json:"login"`
	ID                int64  `json:"id"`
	NodeID            string `json:"node_id"`
	AvatarURL         string `json:"avatar_url"`
	GravatarID        string `json:"gravatar_id"`
	URL               string `json:"url"`
	HTMLURL           string `json:"html_url"`
	FollowersURL      string `json:"followers_url"`
	ReposURL          string `json:"repos_url"`
	Type              string `json:"type"`
	SiteAdmin         bool   `json:"site_admin"`
	UserViewType      string `json:"user_view_type"`
	OrganizationsURL  string `json:"organizations_url"`
	ReceivedEventsURL string `json:"received_events_url"`
}

type commentJSON struct {
	ID                int64    `json:"id"`
	NodeID            string   `json:"node_id"`
	URL               string   `json:"url"`
	HTMLURL           string   `json:"html_url"`
	Body              string   `json:"body"`
	User              userJSON `json:"user"`
	CreatedAt         string   `json:"created_at"`
	UpdatedAt         string   `json:"updated_at"`
	IssueURL          string   `json:"issue_url"`
	AuthorAssociation string   `json:"author_association"`
}

type statusJSON struct {
	URL         string   `json:"url"`
	AvatarURL   string   `json:"avatar_url"`
	ID          int64    `json:"id"`
	NodeID      string   `json:"node_id"`
	State       string   `json:"state"`
	Description *string  `json:"description"`
	TargetURL   *string  `json:"target_url"`
	Context     string   `json:"context"`
	CreatedAt   string   `json:"created_at"`
	UpdatedAt   string   `json:"updated_at"`
	Creator     userJSON `json:"creator"`
}

type repoJSON struct {
	ID            int64    `json:"id"`
	NodeID        string   `json:"node_id"`
	Name          string   `json:"name"`
	FullName      string   `json:"full_name"`
	Owner         userJSON `json:"owner"`
	Private       bool     `json:"private"`
	HTMLURL       string   `json:"html_url"`
	Description   *string  `json:"description"`
	Fork          bool     `json:"fork"`
	URL           string   `json:"url"`
	DefaultBranch string   `json:"default_branch"`
}

type branchJSON struct {
	Label string   `json:"label"`
	Ref   string   `json:"ref"`
	SHA   string   `json:"sha"`
	User  userJSON `json:"user"`
	Repo  repoJSON `json:"repo"`
}

type hrefJSON struct {
	Href string `json:"href"`
}

type pullJSON struct {
	URL                string              `json:"url"`
	ID                 int64               `json:"id"`
	NodeID             string              `json:"node_id"`
	HTMLURL            string              `json:"html_url"`
	DiffURL            string              `json:"diff_url"`
	PatchURL           string              `json:"patch_url"`
	IssueURL           string              `json:"issue_url"`
	CommitsURL         string              `json:"commits_url"`
	ReviewCommentsURL  string              `json:"review_comments_url"`
	ReviewCommentURL   string              `json:"review_comment_url"`
	CommentsURL        string              `json:"comments_url"`
	StatusesURL        string              `json:"statuses_url"`
	Number             int                 `json:"number"`
	State              string              `json:"state"`
	Locked             bool                `json:"locked"`
	Title              string              `json:"title"`
	User               userJSON            `json:"user"`
	Body               *string             `json:"body"`
	Labels             []any               `json:"labels"`
	Milestone          any                 `json:"milestone"`
	ActiveLockReason   any                 `json:"active_lock_reason"`
	CreatedAt          string              `json:"created_at"`
	UpdatedAt          string              `json:"updated_at"`
	ClosedAt           *string             `json:"closed_at"`
	MergedAt           *string             `json:"merged_at"`
	MergeCommitSHA     *string             `json:"merge_commit_sha"`
	Assignee           any                 `json:"assignee"`
	Assignees          []any               `json:"assignees"`
	RequestedReviewers []any               `json:"requested_reviewers"`
	RequestedTeams     []any               `json:"requested_teams"`
	Head               branchJSON          `json:"head"`
	Base               branchJSON          `json:"base"`
	Links              map[string]hrefJSON `json:"_links"`
	AuthorAssociation  string              `json:"author_association"`
	AutoMerge          any                 `json:"auto_merge"`
	Draft              bool                `json:"draft"`
}

type refJSON struct {
	Ref    string `json:"ref"`
	NodeID string `json:"node_id"`
	URL    string `json:"url"`
	Object struct {
		Type string `json:"type"`
		SHA  string `json:"sha"`
		URL  string `json:"url"`
	} `json:"object"`
}

type personJSON struct {
	Date  string `json:"date"`
	Name  string `json:"name"`
	Email string `json:"email"`
}

type gitCommitJSON struct {
	SHA       string     `json:"sha"`
	NodeID    string     `json:"node_id"`
	URL       string     `json:"url"`
	HTMLURL   string     `json:"html_url"`
	Author    personJSON `json:"author"`
	Committer personJSON `json:"committer"`
	Message   string     `json:"message"`
	Tree      struct {
		SHA string `json:"sha"`
		URL string `json:"url"`
	} `json:"tree"`
	Parents []struct {
		SHA     string `json:"sha"`
		URL     string `json:"url"`
		HTMLURL string `json:"html_url"`
	} `json:"parents"`
	Verification struct {
		Verified  bool    `json:"verified"`
		Reason    string  `json:"reason"`
		Signature *string `json:"signature"`
		Payload   *string `json:"payload"`
	} `json:"verification"`
}

// errorJSON is GitHub's error body.
type errorJSON struct {
	Message          string      `json:"message"`
	Errors           []errorItem `json:"errors,omitempty"`
	DocumentationURL string      `json:"documentation_url"`
	Status           string      `json:"status"`
}

type errorItem struct {
	Resource string `json:"resource,omitempty"`
	Field    string `json:"field,omitempty"`
	Code     string `json:"code"`
	Message  string `json:"message,omitempty"`
}

// stamp formats a time as GitHub does: UTC, whole seconds.
func stamp(t time.Time) string { return t.UTC().Truncate(time.Second).Format(time.RFC3339) }

func nodeID(kind string, id any) string {
	return base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "%s%v", kind, id))
}

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// The builders below turn stored state into answers; s.mu is held.

func (s *Server) user(login string) userJSON {
	id := int64(0)
	for _, c := range login {
		id = id*31 + int64(c)
	}
	id = id%9_000_000 + 1_000_000
	api := s.api + "users/" + login
	typ := "User"
	if strings.HasSuffix(login, "[bot]") {
		typ = "Bot"
	}
	return userJSON{
		Login: login, ID: id, NodeID: nodeID("04:User", id),
		AvatarURL:    "https://avatars.githubusercontent.com/u/" + fmt.Sprint(id) + "?v=4",
		URL:          api,
		HTMLURL:      s.web + login,
		FollowersURL: api + "/followers", ReposURL: api + "/repos",
		OrganizationsURL: api + "/orgs", ReceivedEventsURL: api + "/received_events",
		Type: typ, UserViewType: "public",
	}
}

func (s *Server) repoAPI() string { return s.api + "repos/" + s.owner + "/" + s.repo }
func (s *Server) repoWeb() string { return s.web + s.owner + "/" + s.repo }

func (s *Server) commentJSON(pr int, c *Comment) commentJSON {
	assoc := "NONE"
	if c.User == s.tokenUser {
		assoc = "CONTRIBUTOR"
	}
	return commentJSON{
		ID: c.ID, NodeID: nodeID("012:IssueComment", c.ID),
		URL:       fmt.Sprintf("%s/issues/comments/%d", s.repoAPI(), c.ID),
		HTMLURL:   fmt.Sprintf("%s/pull/%d#issuecomment-%d", s.repoWeb(), pr, c.ID),
		Body:      c.Body,
		User:      s.user(c.User),
		CreatedAt: stamp(c.Created), UpdatedAt: stamp(c.Updated),
		IssueURL:          fmt.Sprintf("%s/issues/%d", s.repoAPI(), pr),
		AuthorAssociation: assoc,
	}
}

func (s *Server) statusJSON(sha string, st Status) statusJSON {
	return statusJSON{
		URL:       s.repoAPI() + "/statuses/" + sha,
		AvatarURL: "https://avatars.githubusercontent.com/u/9919?v=4",
		ID:        st.ID, NodeID: nodeID("013:StatusContext", st.ID),
		State: st.State, Description: strPtr(st.Description), TargetURL: strPtr(st.TargetURL),
		Context: st.Context, CreatedAt: stamp(st.Created), UpdatedAt: stamp(st.Created),
		Creator: s.user(cmp.Or(st.Creator, s.tokenUser)),
	}
}

func (s *Server) repoJSON() repoJSON {
	return repoJSON{
		ID: 1296269, NodeID: nodeID("010:Repository", 1296269),
		Name: s.repo, FullName: s.owner + "/" + s.repo, Owner: s.user(s.owner),
		Private: true, HTMLURL: s.repoWeb(), URL: s.repoAPI(), DefaultBranch: "main",
	}
}

func (s *Server) branchJSON(ref, sha string) branchJSON {
	return branchJSON{Label: s.owner + ":" + ref, Ref: ref, SHA: sha, User: s.user(s.owner), Repo: s.repoJSON()}
}

func (s *Server) pullJSON(p *Pull) pullJSON {
	api := fmt.Sprintf("%s/pulls/%d", s.repoAPI(), p.Number)
	issue := fmt.Sprintf("%s/issues/%d", s.repoAPI(), p.Number)
	web := fmt.Sprintf("%s/pull/%d", s.repoWeb(), p.Number)
	baseSHA := s.refs["heads/"+p.Base]
	out := pullJSON{
		URL: api, ID: p.ID, NodeID: nodeID("011:PullRequest", p.ID),
		HTMLURL: web, DiffURL: web + ".diff", PatchURL: web + ".patch", IssueURL: issue,
		CommitsURL: api + "/commits", ReviewCommentsURL: api + "/comments",
		ReviewCommentURL: s.repoAPI() + "/pulls/comments{/number}",
		CommentsURL:      issue + "/comments", StatusesURL: s.repoAPI() + "/statuses/" + p.HeadSHA,
		Number: p.Number, State: p.State, Title: p.Title, User: s.user(p.User), Body: strPtr(p.Body),
		Labels: []any{}, Assignees: []any{}, RequestedReviewers: []any{}, RequestedTeams: []any{},
		CreatedAt: stamp(p.Created), UpdatedAt: stamp(p.Created),
		MergeCommitSHA: strPtr(p.MergeCommit),
		Head:           s.branchJSON(p.Head, p.HeadSHA),
		Base:           s.branchJSON(p.Base, baseSHA),
		Links: map[string]hrefJSON{
			"self": {api}, "html": {web}, "issue": {issue}, "comments": {issue + "/comments"},
			"review_comments": {api + "/comments"}, "review_comment": {s.repoAPI() + "/pulls/comments{/number}"},
			"commits": {api + "/commits"}, "statuses": {s.repoAPI() + "/statuses/" + p.HeadSHA},
		},
		AuthorAssociation: "MEMBER",
	}
	if p.State == "closed" {
		out.ClosedAt = strPtr(stamp(p.Created))
	}
	if p.Merged {
		out.MergedAt = strPtr(stamp(p.Created))
	}
	return out
}

func (s *Server) refJSON(ref, sha string) refJSON {
	var r refJSON
	r.Ref = "refs/" + ref
	r.NodeID = nodeID("03:Ref", r.Ref)
	r.URL = s.repoAPI() + "/git/refs/" + ref
	r.Object.Type = "commit"
	r.Object.SHA = sha
	r.Object.URL = s.repoAPI() + "/git/commits/" + sha
	return r
}

func (s *Server) gitCommitJSON(c *Commit) gitCommitJSON {
	var out gitCommitJSON
	out.SHA = c.SHA
	out.NodeID = nodeID("06:Commit", c.SHA)
	out.URL = s.repoAPI() + "/git/commits/" + c.SHA
	out.HTMLURL = s.repoWeb() + "/commit/" + c.SHA
	who := personJSON{Date: stamp(c.Created), Name: "Monalisa Octocat", Email: "octocat@github.com"}
	out.Author, out.Committer = who, who
	out.Message = c.Message
	out.Tree.SHA = c.Tree
	out.Tree.URL = s.repoAPI() + "/git/trees/" + c.Tree
	for _, p := range c.Parents {
		out.Parents = append(out.Parents, struct {
			SHA     string `json:"sha"`
			URL     string `json:"url"`
			HTMLURL string `json:"html_url"`
		}{p, s.repoAPI() + "/git/commits/" + p, s.repoWeb() + "/commit/" + p})
	}
	if out.Parents == nil {
		out.Parents = []struct {
			SHA     string `json:"sha"`
			URL     string `json:"url"`
			HTMLURL string `json:"html_url"`
		}{}
	}
	out.Verification.Reason = "unsigned"
	return out
}
